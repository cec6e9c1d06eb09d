"""`vagen eval` end to end on CPU: the tiny model plays synthetic samples through a real env
server (waitress on 127.0.0.1), in both modes, resumed, and sharded over worker processes."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from tests.eval.conftest import NUM_SAMPLES, SETTINGS
from vagen.data.sample import load_samples
from vagen.eval.evaluate import EvalConfig, EvalRow, batches, main, run
from vagen.eval.metrics import summarize, viewed_spans
from vagen.eval.results import read_results
from vagen.rewards.grounding import temporal_iou
from vagen.video.sampling import pool_times, uniform_indices

POOL_MAX_FRAMES = 16  # as SETTINGS
OPENING_FRAMES = 4


def _config(model_path, samples_path, out, **overrides) -> EvalConfig:
    """Greedy, 8 tokens a turn, one episode per batch (so runs are comparable row by row),
    one torch thread (the tiny model gains nothing from more on a shared CPU), no viewer
    (tests/view builds and checks it)."""
    return EvalConfig(model=str(model_path), data=str(samples_path), out=str(out),
                      set=list(SETTINGS), batch_size=1, env_workers=2,
                      cpu_threads=1, **{"view": False, **overrides})


def _uniform_iou(sample, frames: int) -> float:
    """Temporal IoU of `frames` uniform pool frames with the sample's spans, by hand."""
    times = pool_times(sample.duration_s, 1.0, POOL_MAX_FRAMES)
    width = sample.duration_s / len(times)
    seen = [float(times[i]) for i in uniform_indices(len(times), frames)]
    return temporal_iou(viewed_spans(seen, None, [width]), sample.relevant_spans)


@pytest.fixture(scope="module")
def multi_run(tmp_path_factory, model_path, samples_path):
    out = tmp_path_factory.mktemp("eval") / "multi"
    summary = run(_config(model_path, samples_path, out))
    return out, summary, read_results(out / "results.jsonl")


def test_multi_mode_plays_every_sample_through_the_server(multi_run, samples_path):
    out, summary, results = multi_run
    samples = load_samples(samples_path)
    group = samples_path.parent.name
    assert [r["id"] for r in results] == [f"{group}/{i}" for i in range(NUM_SAMPLES)]
    for result, sample in zip(results, samples, strict=True):
        assert (result["sample_id"], result["protocol"], result["category"],
                result["answer"]) == (sample.id, "retrieve", sample.category, sample.answer)
        assert 1 <= result["turns"] == len(result["responses"]) <= 2
        assert result["frames_viewed"] >= OPENING_FRAMES
        assert (result["numeric_reward"] is None) == (sample.answer_type != "number")
        if result["invalid_actions"] == result["turns"]:  # nothing asked: the opening frames
            assert result["frames_viewed"] == OPENING_FRAMES
            assert result["temporal_iou"] == pytest.approx(_uniform_iou(sample, OPENING_FRAMES))
    assert summary == summarize(results)
    assert summary["overall"]["n"] == NUM_SAMPLES


def test_report_files_hold_the_returned_summary(multi_run):
    out, summary, _ = multi_run
    written = json.loads((out / "summary.json").read_text())
    assert written["run"]["mode"] == "multi"
    assert written["run"]["set"]["max_turns"] == 2
    assert {k: v for k, v in written.items() if k != "run"} == summary
    assert "## By duration" in (out / "summary.md").read_text()
    for name in ("by_group", "by_source", "by_category", "by_duration"):
        assert (out / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_single_mode_shows_uniform_frames_in_one_turn(tmp_path, model_path, samples_path,
                                                      capsys):
    out = tmp_path / "single"
    code = main(["--model", str(model_path), "--data", str(samples_path), "--out", str(out),
                 "--mode", "single", "--frames", "3", "--set", *SETTINGS,
                 "--batch-size", "2", "--cpu-threads", "1"])
    assert code == 0
    assert "| all | 3 |" in capsys.readouterr().out
    results = read_results(out / "results.jsonl")
    for result, sample in zip(results, load_samples(samples_path), strict=True):
        assert (result["protocol"], result["turns"], result["frames_viewed"]) == ("single", 1, 3)
        assert result["temporal_iou"] == pytest.approx(_uniform_iou(sample, 3))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["overall"]["mean_turns"] == 1.0
    assert summary["overall"]["frames_viewed"] == 3.0


def test_a_rerun_skips_finished_episodes_and_gives_the_same_summary(multi_run, model_path,
                                                                    samples_path):
    out, summary, results = multi_run
    path = out / "results.jsonl"
    before = path.read_text()
    assert run(_config(model_path, samples_path, out)) == summary
    assert path.read_text() == before  # nothing played again
    # A kill mid-run: the second line cut short, the third never written.
    lines = before.splitlines(keepends=True)
    path.write_text(lines[0] + lines[1][:20])
    assert run(_config(model_path, samples_path, out)) == summary
    replayed = read_results(path)
    assert path.read_text().startswith(lines[0])
    assert sorted(r["id"] for r in replayed) == sorted(r["id"] for r in results)
    assert {r["id"]: r for r in replayed} == {r["id"]: r for r in results}


def test_other_settings_in_the_same_folder_are_refused(multi_run, model_path, samples_path,
                                                       capsys):
    out, _, _ = multi_run
    code = main(["--model", str(model_path), "--data", str(samples_path), "--out", str(out),
                 "--set", *SETTINGS, "--set", "max_new_tokens=16"])
    assert code == 2
    err = capsys.readouterr().err
    assert "holds results of another run (set: " in err and "'max_new_tokens': 16" in err


@pytest.mark.slow
def test_rows_sharded_over_two_worker_processes_give_the_same_results(
        multi_run, tmp_path, model_path, samples_path):
    out, summary, results = multi_run
    sharded = run(_config(model_path, samples_path, tmp_path / "sharded", gpus=2))
    assert sharded == summary
    by_id = {r["id"]: r for r in read_results(tmp_path / "sharded" / "results.jsonl")}
    assert by_id == {r["id"]: r for r in results}


def test_a_server_url_that_does_not_answer_is_a_clear_error(tmp_path, model_path,
                                                            samples_path, capsys):
    code = main(["--model", str(model_path), "--data", str(samples_path),
                 "--out", str(tmp_path / "out"), "--server", "http://127.0.0.1:9"])
    assert code == 2
    assert "no env server answers at http://127.0.0.1:9" in capsys.readouterr().err


def test_batches_hold_one_group_config_each():
    rows = [EvalRow(f"{g}/{i}", g, {"name": g}, i) for g, i in
            [("a", 0), ("b", 0), ("a", 1), ("a", 2), ("b", 1)]]
    assert [[r.id for r in batch] for batch in batches(rows, 2)] == [
        ["a/0", "a/1"], ["a/2"], ["b/0", "b/1"]]


def test_bad_flags_are_rejected_before_anything_runs(tmp_path, model_path, samples_path,
                                                     capsys):
    code = main(["--model", str(tmp_path), "--data", "x.jsonl", "--batch-size", "0"])
    assert code == 2
    assert "--batch-size must be >= 1, got 0" in capsys.readouterr().err
    out = tmp_path / "out"
    code = main(["--model", str(model_path), "--data", str(samples_path), "--out", str(out),
                 "--backend", "vllm"])
    assert code == 2
    assert "--backend vllm runs on GPUs only" in capsys.readouterr().err
    assert not out.exists()


def broken_samples(samples_path: Path, tmp_path: Path) -> Path:
    """The 3 good samples plus 5 whose videos cannot be played: missing, 0-byte, truncated,
    a text file, a directory named .mp4 (absolute paths into tmp_path)."""
    from vagen.data import save_samples

    good = [replace(s, videos=[str(samples_path.parent / v) for v in s.videos])
            for s in load_samples(samples_path)]
    first = Path(good[0].videos[0])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.mp4").write_bytes(b"")
    (bad / "truncated.mp4").write_bytes(first.read_bytes()[:600])
    (bad / "text.mp4").write_text("not a video\n")
    (bad / "folder.mp4").mkdir()
    broken = [replace(good[0], id=f"broken-{name}", videos=[str(bad / f"{name}.mp4")])
              for name in ("missing", "empty", "truncated", "text", "folder")]
    return save_samples([*good, *broken], tmp_path / "mixed.jsonl")


def test_broken_videos_are_failed_episodes_and_the_run_finishes(model_path, samples_path,
                                                                tmp_path, capsys):
    mixed = broken_samples(samples_path, tmp_path)
    out = tmp_path / "mixed-run"
    args = ["--model", str(model_path), "--data", str(mixed), "--out", str(out),
            "--set", *SETTINGS, "--batch-size", "4", "--cpu-threads", "1"]
    # 5 of 8 failing is more than the default 5%: everything is written, then rc 2 says so
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "5 of 8 episodes failed" in err and "broken-folder" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["overall"]["n"] == 3
    assert summary["failed_episodes"]["n"] == 5
    assert summary["failed_episodes"]["by_reason"] == {
        "empty video": 1, "missing video": 2, "undecodable video": 2}
    results = read_results(out / "results.jsonl")
    assert {r["sample_id"] for r in results if r.get("failed")} == {
        f"broken-{name}" for name in ("missing", "empty", "truncated", "text", "folder")}
    assert all(r["error"].startswith("http://127.0.0.1") for r in results if r.get("failed"))
    assert "Failed episodes" in (out / "summary.md").read_text()
    # a rerun does not play them again (and now accepts the share) ...
    assert main([*args, "--max-failed-share", "1"]) == 0
    assert len(read_results(out / "results.jsonl")) == 8
    # ... unless asked to: they fail again, each recorded once more
    assert main([*args, "--max-failed-share", "1", "--retry-failed"]) == 0
    assert len(read_results(out / "results.jsonl")) == 13
    again = json.loads((out / "summary.json").read_text())
    assert again["overall"] == summary["overall"] and again["failed_episodes"]["n"] == 5


def test_max_visual_tokens_caps_every_group_of_the_run(model_path, samples_path, tmp_path):
    from vagen.eval.rows import load_rows

    config = _config(model_path, samples_path, tmp_path, max_visual_tokens=6)
    assert config.settings()["max_visual_tokens"] == 6
    assert config.identity()["set"]["max_visual_tokens"] == 6  # a resumed run must keep it
    rows = load_rows(config.data, overrides=config.settings())
    assert {row.config["max_visual_tokens"] for row in rows} == {6}
    with pytest.raises(ValueError, match="--max-visual-tokens must be >= 1"):
        _config(model_path, samples_path, tmp_path, max_visual_tokens=0)
