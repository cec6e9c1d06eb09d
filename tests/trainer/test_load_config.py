"""`vagen.config`: YAML and `key=value` overrides onto the config dataclasses. Values are
coerced to the field types; unknown keys, wrong types and cross-field mistakes fail with the
dotted key named, before any model is loaded."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from vagen.cli import main
from vagen.config import ConfigKeyError, from_dict, load_config
from vagen.trainer.local import TrainConfig

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Inner:
    rate: float = 0.1
    name: str = "a"


@dataclass
class Outer:
    count: int = 1
    flag: bool = False
    window: int | None = 2
    tags: list[str] = field(default_factory=list)
    weights: dict[str, float] = field(default_factory=dict)
    inner: Inner = field(default_factory=Inner)

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValueError(f"count is {self.count}; set it >= 0")


def test_values_are_coerced_to_the_field_types() -> None:
    config = from_dict(Outer, {"count": "3", "flag": True, "window": None, "tags": ["x", 1],
                               "weights": {"choice": "1", "format": 0.5},
                               "inner": {"rate": "1e-3", "name": 7}})
    assert config == Outer(count=3, flag=True, window=None, tags=["x", "1"],
                           weights={"choice": 1.0, "format": 0.5},
                           inner=Inner(rate=0.001, name="7"))
    assert isinstance(config.count, int) and isinstance(config.weights["choice"], float)
    assert from_dict(Outer, {"count": 4.0}).count == 4  # a whole float is an int


@pytest.mark.parametrize("data, message", [
    ({"cnt": 1}, "unknown key 'cnt'; valid keys: count, flag"),
    ({"inner": {"rat": 1}}, "unknown key 'inner.rat'; valid keys: rate"),
    ({"count": "abc"}, "config key 'count' must be a number, got 'abc'"),
    ({"count": 1.5}, "config key 'count' must be an integer, got 1.5"),
    ({"count": True}, "config key 'count' must be a number, got True"),
    ({"flag": "yes"}, "config key 'flag' must be true or false, got 'yes'"),
    ({"tags": "x"}, "config key 'tags' must be a list, got 'x'"),
    ({"weights": {"choice": "high"}}, "config key 'weights.choice' must be a number"),
    ({"inner": 3}, "'inner' must be a mapping, got int"),
    ({"inner": {"name": ["a"]}}, "config key 'inner.name' must be a string"),
    ({"count": -1}, "count is -1; set it >= 0"),
])
def test_bad_values_name_the_dotted_key(data: dict, message: str) -> None:
    with pytest.raises(ConfigKeyError) as error:
        from_dict(Outer, data)
    assert message in str(error.value)


def test_overrides_apply_on_top_of_the_yaml(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("steps: 5\noptim: {lr: 1.0e-4, micro_batch_size: 2}\n"
                    "sampling: {temperature: 0.7}\n")
    config = load_config(TrainConfig, path, ["optim.lr=3e-5", "envs.urls=[http://a:1,http://b:2]",
                                             "algo.loss.clip_ratio_c=3"])
    assert config.steps == 5
    assert config.optim.lr == 3e-5 and config.optim.micro_batch_size == 2
    assert config.sampling.temperature == 0.7
    assert config.envs.urls == ["http://a:1", "http://b:2"]
    assert config.algo.loss.clip_ratio_c == 3.0
    assert config.prompts_per_step == TrainConfig().prompts_per_step  # untouched default


@pytest.mark.parametrize("override, message", [
    ("optim.lrr=1e-5", "unknown key 'optim.lrr'; valid keys: lr,"),
    ("steps=abc", "config key 'steps' must be a number, got 'abc'"),
    ("algo.n=1", "algo.n is 1: GRPO compares samples of one prompt"),
    ("algo.mode=ppo", "algo.adv_estimator 'grpo' does not fit algo.mode 'ppo'"),
    ("algo.adv_estimator=gae", "algo.adv_estimator: unknown advantage estimator 'gae'; "
                               "registered: bi_level_gae, grpo, grpo_turn, masked_gae"),
    ("algo.loss.clip_ratio_low=1.5", "clip_ratio_low is 1.5; set it within [0, 1) "
                                     "(in 'algo.loss')"),
    ("model.tune_mm_llm=maybe", "config key 'model.tune_mm_llm' must be true or false"),
    ("model.dtype=fp8", "model.dtype is 'fp8'"),
    ("sampling.temperature=-1", "temperature must be >= 0, got -1.0 (in 'sampling')"),
    ("sampling.max_new_tokens=64", "sampling.max_new_tokens: tokens per turn come from the "
                                   "env group"),
    ("envs.urls=http://a", "config key 'envs.urls' must be a list"),
    ("optim", "override 'optim' is not key=value"),
])
def test_bad_train_config_names_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigKeyError) as error:
        load_config(TrainConfig, None, [override])
    assert message in str(error.value)


def test_unknown_key_in_the_yaml_is_named(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("algo:\n  loss: {kl_coeff: 0.1}\n")
    with pytest.raises(ConfigKeyError, match="unknown key 'algo.loss.kl_coeff'"):
        load_config(TrainConfig, path)


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(TrainConfig, tmp_path / "nope.yaml")


def test_example_config_is_valid() -> None:
    config = load_config(TrainConfig, REPO / "scripts" / "configs" / "local_grpo.yaml",
                         ["model.path=/ckpt"])
    assert config.model.path == "/ckpt"
    assert config.envs.config == "runs/quickstart/env_config.yaml"
    assert config.algo.mode == "grpo" and config.algo.n == 8


def test_vagen_train_reports_a_bad_key_before_loading_anything(tmp_path: Path, capsys) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("model: {path: /does/not/exist}\n")
    assert main(["train", "--config", str(path), "optim.lrr=1e-5"]) == 2
    assert "error: unknown key 'optim.lrr'" in capsys.readouterr().err
