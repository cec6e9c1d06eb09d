"""Evaluation rows from a samples file and from an env parquet, modes, overrides, shards."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.eval.conftest import NUM_SAMPLES
from vagen.env.video_qa import ConfigError
from vagen.eval.rows import (
    EvalRow,
    RowsError,
    apply_mode,
    load_rows,
    shard_rows,
)


def test_a_samples_file_is_one_group_over_all_its_samples(samples_path):
    rows = load_rows(samples_path, protocol="query", overrides={"max_pixels": 3136})
    group = samples_path.parent.name
    assert [(r.id, r.group, r.seed) for r in rows] == [(f"{group}/{i}", group, i)
                                                       for i in range(NUM_SAMPLES)]
    config = rows[0].config
    assert (config["protocol"], config["n"], config["max_turns"], config["max_pixels"],
            config["data"]) == ("query", NUM_SAMPLES, 3, 3136, str(samples_path.resolve()))


def test_single_mode_is_one_turn_of_uniform_frames(samples_path):
    rows = load_rows(samples_path, mode="single", frames=6)
    assert {(r.config["protocol"], r.config["max_turns"], r.config["initial_frames"])
            for r in rows} == {("single", 1, 6)}
    multi = {"name": "g", "protocol": "retrieve", "initial_frames": 16, "data": "x"}
    assert apply_mode(multi, "single")["initial_frames"] == 16  # the group's own count


def test_mode_errors_name_what_to_change():
    config = {"name": "g", "protocol": "retrieve", "data": "x"}
    with pytest.raises(RowsError, match="use it with --mode single"):
        apply_mode(config, "multi", frames=4)
    with pytest.raises(RowsError, match="mode 'both': use one of multi, single"):
        apply_mode(config, "both")
    with pytest.raises(ConfigError, match="unknown key 'max_frames'"):
        apply_mode({**config, "max_frames": 4}, "multi")


def test_overrides_are_key_value_pairs_read_as_yaml():
    from vagen.config import ConfigKeyError
    from vagen.eval.evaluate import set_overrides

    assert set_overrides(["max_pixels=3136", "pool_fps=0.5", "rewards={choice: 1.0}"]) == {
        "max_pixels": 3136, "pool_fps": 0.5, "rewards": {"choice": 1.0}}
    with pytest.raises(ConfigKeyError, match="--set 'max_pixels' is not key=value"):
        set_overrides(["max_pixels"])


def _env_parquet(path, samples_path, rows):
    """An env parquet as `vagen data create` writes it: config as JSON, one row per seed."""
    records = [{"env_group": name, "env": "video_qa", "seed": seed, "config": json.dumps(
        {"name": name, "env": "video_qa", "protocol": protocol, "data": str(samples_path),
         "split": "test", "max_turns": 1 if protocol == "single" else 3})}
        for name, protocol, seed in rows]
    pd.DataFrame(records).to_parquet(path, index=False)
    return path


def test_an_env_parquet_gives_one_row_per_group_and_seed(tmp_path, samples_path):
    path = _env_parquet(tmp_path / "test.parquet", samples_path,
                        [("retrieve-test", "retrieve", 0), ("retrieve-test", "retrieve", 1),
                         ("single-test", "single", 0)])
    rows = load_rows(path)
    assert [(r.id, r.config["protocol"]) for r in rows] == [
        ("retrieve-test/0", "retrieve"), ("retrieve-test/1", "retrieve"),
        ("single-test/0", "single")]
    assert [r.id for r in load_rows(path, groups=["single-test"])] == ["single-test/0"]
    with pytest.raises(RowsError, match="no env group 'query-test'; groups: retrieve-test, "
                                        "single-test"):
        load_rows(path, groups=["query-test"])


def test_env_parquet_errors_name_the_column_or_the_row(tmp_path, samples_path):
    pd.DataFrame([{"seed": 0}]).to_parquet(tmp_path / "a.parquet")
    with pytest.raises(RowsError, match="column 'config' is missing"):
        load_rows(tmp_path / "a.parquet")
    twice = _env_parquet(tmp_path / "b.parquet", samples_path,
                         [("g", "retrieve", 3), ("g", "retrieve", 3)])
    with pytest.raises(RowsError, match="episode 'g/3' .* appears twice"):
        load_rows(twice)
    with pytest.raises(RowsError, match="evaluation data not found"):
        load_rows(tmp_path / "missing.parquet")


def test_shards_deal_rows_round_robin():
    rows = [EvalRow(f"g/{i}", "g", {}, i) for i in range(5)]
    assert [[r.seed for r in shard] for shard in shard_rows(rows, 2)] == [[0, 2, 4], [1, 3]]
    assert [len(shard) for shard in shard_rows(rows[:1], 3)] == [1, 0, 0]
