"""results.jsonl and run.json: appending, reading back after a kill, refusing to mix runs."""

from __future__ import annotations

import json

import pytest

from vagen.eval.results import ResultsError, ResultsWriter, check_run, read_results


def test_results_are_appended_one_line_each_and_read_back(tmp_path):
    path = tmp_path / "out" / "results.jsonl"
    assert read_results(path) == []
    with ResultsWriter(path) as writer:
        writer.write({"id": "g/0", "correct": True})
    with ResultsWriter(path) as writer:
        writer.write({"id": "g/1", "correct": False})
    assert path.read_text() == ('{"id": "g/0", "correct": true}\n'
                                '{"id": "g/1", "correct": false}\n')
    assert read_results(path) == [{"id": "g/0", "correct": True}, {"id": "g/1", "correct": False}]


def test_a_last_line_cut_by_a_kill_is_dropped_so_its_episode_plays_again(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text('{"id": "g/0"}\n{"id": "g/1", "corr')
    assert read_results(path) == [{"id": "g/0"}]
    assert path.read_text() == '{"id": "g/0"}\n'
    with ResultsWriter(path) as writer:
        writer.write({"id": "g/1"})
    assert read_results(path) == [{"id": "g/0"}, {"id": "g/1"}]


def test_a_broken_line_in_the_middle_is_an_error_naming_it(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text('{"id": "g/0"}\nnot json\n{"id": "g/1"}\n')
    with pytest.raises(ResultsError, match=r"results.jsonl: line 2 is not JSON"):
        read_results(path)


def test_run_settings_are_recorded_and_a_resume_with_other_settings_is_refused(tmp_path):
    run = {"model": "/ckpt", "mode": "multi", "max_new_tokens": 64}
    check_run(tmp_path, run)
    assert json.loads((tmp_path / "run.json").read_text()) == run
    check_run(tmp_path, dict(run))  # same settings: resume
    with pytest.raises(ResultsError, match=r"another run \(mode: 'multi', now 'single'\); use "
                                           r"another --out"):
        check_run(tmp_path, {**run, "mode": "single"})
