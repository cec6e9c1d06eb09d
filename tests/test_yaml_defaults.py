"""YAML files set only what differs from the dataclasses, the one source of defaults: a key
whose value equals its default fails, unless its line says `pinned` (a recipe's value kept
explicit on purpose, e.g. Video-MTR's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from vagen.config import config_keys
from vagen.env.video_qa.config import VideoQAConfig
from vagen.trainer.local import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
ENV_CONFIGS = ["env_config.yaml", "scripts/quickstart/env_config.yaml",
               "scripts/video_ppo/env_config.yaml"]
# Keys that say which group this is rather than tune it.
IDENTITY = {"name", "env", "data", "split", "protocol", "n"}


def mappings(node: yaml.Node, prefix: str = "") -> list[tuple[str, yaml.Node, yaml.Node]]:
    """(dotted key, key node, value node) of every leaf written in the file (merged `<<`
    keys are not written there, so they are left out)."""
    found = []
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == "<<":
                continue
            if (isinstance(value, yaml.MappingNode) and key.value != "rewards") or (
                    isinstance(value, yaml.SequenceNode)
                    and all(isinstance(v, yaml.MappingNode) for v in value.value)):
                found += mappings(value, f"{prefix}{key.value}.")
            else:
                found.append((f"{prefix}{key.value}", key, value))
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            found += mappings(item, prefix)
    return found


def restated(path: Path, defaults: dict[str, Any], strip: str = "") -> list[str]:
    lines = path.read_text().splitlines()
    bad = []
    for key, key_node, value_node in mappings(yaml.compose(path.read_text())):
        key = key.removeprefix(strip)
        if key not in defaults or key.split(".")[-1] in IDENTITY:
            continue
        value = yaml.safe_load(yaml.serialize(value_node))
        if value == defaults[key] and "pinned" not in lines[key_node.start_mark.line]:
            bad.append(f"{path.name}:{key_node.start_mark.line + 1}: {key}: {value!r}")
    return bad


@pytest.mark.parametrize("name", ENV_CONFIGS)
def test_env_configs_set_only_what_differs(name):
    defaults = {key: default for key, _, default, _ in config_keys(VideoQAConfig)}
    for section in ("train_defaults.", "test_defaults.", "env_groups."):
        assert not (bad := restated(ROOT / name, defaults, section)), "\n".join(bad)


def test_the_local_grpo_config_sets_only_what_differs():
    defaults = {key: default for key, _, default, _ in config_keys(TrainConfig)}
    assert not (bad := restated(ROOT / "scripts/configs/local_grpo.yaml", defaults)), \
        "\n".join(bad)


def test_the_check_sees_a_restated_default(tmp_path):
    path = tmp_path / "env_config.yaml"
    path.write_text("env_groups:\n  - {name: a, max_turns: 3}\n  - {name: b, pool_fps: 2.0}\n"
                    "train_defaults:\n  seed: 0   # pinned: the recipe's\n")
    defaults = {key: default for key, _, default, _ in config_keys(VideoQAConfig)}
    assert [line.split(": ")[1] for line in restated(path, defaults, "env_groups.")] == [
        "max_turns"]
