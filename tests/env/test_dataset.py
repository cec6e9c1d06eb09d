import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from vagen.data.convert import ConvertOptions, convert
from vagen.data.sample import load_samples
from vagen.env import load_env_groups, make_env
from vagen.env.dataset import main
from vagen.env.video_qa import VideoQAConfig
from vagen.env.video_qa.protocols import BUILT_IN

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def config_path(tmp_path_factory) -> Path:
    """An env config whose synthetic data (3 samples: colour, which-video, colour) is made by
    `vagen data create` itself."""
    root = tmp_path_factory.mktemp("create")
    data = root / "synthetic"
    base = {"env": "video_qa", "data": str(data / "samples.jsonl"), "initial_frames": 4,
            "frames_per_turn": 3, "max_pixels": 64 * 64}
    config = {
        "synthetic": [{"out": str(data), "n": 3, "seed": 0, "kinds": ["color", "which_video"],
                       "min_duration_s": 22, "max_duration_s": 30}],
        "env_groups": [
            {**base, "name": "query-train", "protocol": "query", "n": 3},
            {**base, "name": "single-test", "protocol": "single", "max_turns": 1,
             "split": "test", "n": 2, "seed": 5},
        ]}
    path = root / "env_config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_rows_rebuild_their_episodes(config_path, tmp_path):
    assert main(["--config", str(config_path), "--out", str(tmp_path)]) == 0
    samples = load_samples(config_path.parent / "synthetic" / "samples.jsonl")
    train = pd.read_parquet(tmp_path / "train.parquet")
    test = pd.read_parquet(tmp_path / "test.parquet")
    assert list(train.env_group) == ["query-train"] * 3 and list(train.seed) == [0, 1, 2]
    assert list(test.env_group) == ["single-test"] * 2 and list(test.seed) == [5, 6]
    assert list(test.sample_id) == [samples[2].id, samples[0].id]  # seed % 3
    assert [info["index"] for info in test.extra_info] == [0, 1]
    assert set(train.split) == {"train"} and set(test.split) == {"test"}
    row = train.iloc[1]
    env = make_env(row.env, json.loads(row.config))
    assert env.config.protocol == "query" and env.config.initial_frames == 4
    assert env.sample_for_seed(int(row.seed)).id == row.sample_id == samples[1].id
    assert row.prompt[0]["content"] == env.system_prompt()
    assert row.reward_model["ground_truth"] == samples[1].answer


def test_overrides_and_group_choice(config_path, tmp_path):
    assert main(["--config", str(config_path), "--out", str(tmp_path), "--groups",
                 "single-test", "n=1", "max_turns=1"]) == 0
    assert not (tmp_path / "train.parquet").exists()
    test = pd.read_parquet(tmp_path / "test.parquet")
    assert list(test.seed) == [5] and json.loads(test.config[0])["n"] == 1


def test_verltool_export(config_path, tmp_path):
    assert main(["--config", str(config_path), "--out", str(tmp_path), "--format",
                 "verltool", "--groups", "query-train"]) == 0
    rows = pd.read_parquet(tmp_path / "train.parquet").to_dict(orient="records")
    env = make_env("video_qa", load_env_groups(config_path)["query-train"])
    for seed, row in enumerate(rows):
        sample, info = env.sample_for_seed(seed), row["extra_info"]
        system, user = row["prompt"]
        assert system["role"] == "system" and user["role"] == "user"
        assert user["content"].count("<image>") == len(row["images"]) == len(sample.videos)
        assert row["reward_model"]["ground_truth"] == sample.answer
        assert info["qid"] == sample.id and info["is_video"] and info["frames_per_query"] == 3
        assert [list(s) for s in info["relevant_spans"]] == sample.relevant_spans
        turns = [list(t) for t in info["turn_frames"]]
        opening = max(4, len(sample.videos))  # at least one frame per video
        assert [len(t) for t in turns] == [opening, 3, 3]
        flat = [i for t in turns for i in t]
        assert len(set(flat)) == len(flat)  # later turns show unseen frames
        assert all(Path(p).is_file() for p in info["frame_paths"])
        obs = env.reset(seed)  # turn 1 of the export is what the env shows at reset
        assert [info["frame_times"][i - 1] for i in turns[0]] == obs.timestamps
        assert [info["frame_video_ids"][i - 1] for i in turns[0]] == obs.video_ids
    back = convert("verltool", tmp_path / "train.parquet", ConvertOptions()).samples
    original = [env.sample_for_seed(seed) for seed in range(3)]
    assert [(s.question, s.options, s.answer) for s in back] == [
        (s.question, s.options, s.answer) for s in original]


@pytest.mark.parametrize("args, message", [
    (["--groups", "nope"], "unknown env group 'nope'; groups in .*: query-train, single-test"),
    (["max_turn=4"], "unknown key 'max_turn'"),
    (["n"], "override 'n' is not key=value"),
])
def test_errors_name_what_to_fix(config_path, tmp_path, capsys, args, message):
    assert main(["--config", str(config_path), "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vagen data create: error: ") and re.search(message, err)


def test_the_default_env_config_has_every_protocol_for_train_and_test():
    path = REPO / "env_config.yaml"
    groups = load_env_groups(path)
    configs = [VideoQAConfig.from_dict(group) for group in groups.values()]
    assert {(c.protocol, c.split) for c in configs} == {
        (p, s) for p in BUILT_IN for s in ("train", "test")}
    outs = {entry["out"] for entry in yaml.safe_load(path.read_text())["synthetic"]}
    assert {str(Path(c.data).parent) for c in configs} == outs
    assert all((c.max_turns, c.initial_frames, c.frames_per_turn, c.pool_max_frames) ==
               (1 if c.protocol == "single" else 3, 16, 8, 64) for c in configs)
