"""Evaluation: `vagen eval` (evaluate.py) plays a benchmark through the env server and scores
it (metrics.py), writes results.jsonl, summary.json, summary.md and plots (results.py,
report.py); run_eval.sh starts and stops the server around it. Submodules are imported on
use, so that a data-parallel worker can pin its GPU before torch or vLLM load."""
