"""Every verl-facing line of vagen (verl 0.9.1, legacy trainer `trainer.use_v1=false`):

- `agent_loop`: the agent loop verl runs per trajectory against our env servers, and the
  worker/manager that keep per-turn rewards on their turns;
- `reward`: `compute_score`, verl's custom reward function on `vagen.rewards`;
- `advantages`: `grpo_turn` and `bi_level_gae` registered into verl's estimator registry;
- `main`: `python -m vagen.trainer.verl.main`, our configs (`config/`) composed with verl's;
  `budget`: the image limit and length checks from the env groups;
- `critic`: the Qwen-VL value models verl builds the PPO critic from (a verl plugin);
- `merge`: verl checkpoints to Hugging Face folders for `run_eval.sh`.

Nothing here is imported by the rest of vagen, and importing this package imports no verl."""
