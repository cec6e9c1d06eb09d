"""`vagen view`: the page's data is what the run played, thumbnails are the frames shown
(each distinct frame once), and failed episodes and training runs are shown too."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from vagen.cli import main
from vagen.eval.results import read_results
from vagen.view.build import ViewError, build_view


def page_data(page: Path) -> dict:
    found = re.search(r'<script id="data" type="application/json">(.*?)</script>',
                      page.read_text(), flags=re.S)
    return json.loads(found.group(1).replace("<\\/", "</"))


def test_eval_writes_a_page_of_every_episode_with_the_frames_of_each_turn(eval_run: Path):
    results = {r["id"]: r for r in read_results(eval_run / "results.jsonl")}
    episodes = page_data(eval_run / "view" / "index.html")["episodes"]
    assert {e["id"] for e in episodes} == set(results)
    for episode in episodes:
        result = results[episode["id"]]
        # turn k sees the opening, then what step k-1 returned
        assert len(episode["views"]) == len(episode["steps"]) == result["turns"]
        assert [f["t"] for f in episode["views"][0]] == result["opening"]["times"]
        seen = sum(len(view) for view in episode["views"]) + len(
            result["steps"][-1]["shown"]["times"])
        assert seen == result["frames_viewed"]
        assert episode["visual_tokens"] == result["visual_tokens"] > 0
        for view in episode["views"]:
            for frame in view:
                assert (eval_run / "view" / frame["src"]).stat().st_size > 300


def test_each_distinct_frame_is_one_thumbnail(eval_run: Path, tmp_path: Path):
    page = build_view(eval_run, tmp_path / "again")
    sources = {f["src"] for e in page_data(page)["episodes"] for view in e["views"]
               for f in view}
    assert len(list((tmp_path / "again" / "thumbs").iterdir())) == len(sources)


def test_a_failed_episode_is_listed_without_frames(eval_run: Path, tmp_path: Path):
    run = tmp_path / "run"
    shutil.copytree(eval_run, run, ignore=shutil.ignore_patterns("view"))
    with (run / "results.jsonl").open("a") as out:
        out.write(json.dumps({"id": "g/9", "group": "g", "seed": 9, "sample_id": None,
                              "failed": "missing video", "error": "no such video file",
                              "correct": False}) + "\n")
    [failed] = [e for e in page_data(build_view(run))["episodes"] if e["id"] == "g/9"]
    assert failed["status"] == "failed" and failed["views"] == []
    assert failed["error"] == "no such video file"


def test_the_command_prints_the_page_and_names_a_folder_it_cannot_read(eval_run, tmp_path,
                                                                       capsys):
    assert main(["view", str(eval_run), "--out", str(tmp_path / "v")]) == 0
    assert f"trajectory viewer: {tmp_path / 'v' / 'index.html'}" in capsys.readouterr().out
    assert main(["view", str(tmp_path)]) == 2
    assert "no results.jsonl or trajectories.jsonl" in capsys.readouterr().err
    with pytest.raises(ViewError, match="give an eval folder"):
        build_view(tmp_path)


def test_eval_keeps_its_results_when_a_video_is_gone(eval_run: Path, tmp_path: Path, capsys):
    """Videos that live only where a remote env server runs: no viewer, said so."""
    from vagen.eval.evaluate import write_view

    run = tmp_path / "run"
    shutil.copytree(eval_run, run, ignore=shutil.ignore_patterns("view"))
    lines = (run / "results.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["videos"][0]["path"] = str(tmp_path / "elsewhere.mp4")
    (run / "results.jsonl").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    assert write_view(run) is None
    assert "the trajectory viewer was not written" in capsys.readouterr().err
    assert len(read_results(run / "results.jsonl")) == len(lines)
