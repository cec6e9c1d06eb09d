"""Report files written from a hand-made summary."""

from __future__ import annotations

import json

from vagen.eval.metrics import summarize
from vagen.eval.report import markdown, write_report

RUN = {"model": "/ckpt", "mode": "multi"}


def test_report_writes_json_markdown_and_one_png_per_breakdown(tmp_path, results):
    summary = summarize(results)
    paths = write_report(tmp_path / "out", summary, RUN)
    assert [p.name for p in paths] == ["summary.json", "summary.md", "by_group.png",
                                       "by_source.png", "by_category.png", "by_duration.png",
                                       "accuracy_vs_frames.png"]
    assert json.loads(paths[0].read_text()) == {"run": RUN, **summary}
    for png in paths[2:]:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size > 5000  # bars, labels and titles were drawn


def test_markdown_tables_format_each_metric_and_mark_missing_values(results):
    text = markdown(summarize(results), RUN)
    lines = text.splitlines()
    assert lines[:4] == ["# Evaluation summary", "", "- model: `/ckpt`", "- mode: `multi`"]
    assert ("| source | n | accuracy | numeric reward | reward | turns | frames viewed "
            "| frames p90 | visual tokens | tokens p90 | temporal IoU | evidence seen "
            "| invalid actions |") in lines
    # results written before visual tokens were reported have none
    assert ("| all | 4 | 50.0% | 0.982 | 0.600 | 2.00 | 8.5 | 11.4 | – | – | 0.250 | – "
            "| 37.5% |") in lines
    assert ("| A | 2 | 50.0% | 0.964 | 0.600 | 2.00 | 10.0 | 11.6 | – | – | 0.500 | – "
            "| 25.0% |") in lines
    # Only one choice question in A/x: no numeric reward to average.
    assert ("| A/x | 1 | 100.0% | – | 1.100 | 1.00 | 8.0 | 8.0 | – | – | 0.500 | – "
            "| 0.0% |") in lines
    assert lines.index("## By duration") > lines.index("## By category")
