"""Train on verl 0.9.1: `python -m vagen.trainer.verl.main --config-name video_ppo key=value ...`.

The config is verl's Hydra `ppo_trainer` with two layers on top, in this order:
1. `vagen_defaults`, generated here from vagen's dataclasses (advantage, loss, sampling and
   agent defaults; how verl reaches our agent loop, estimators and reward) - one source of
   defaults, no second hand-kept copy;
2. `config/common.yaml` then `config/<name>.yaml`: what the runs set (Video-MTR's
   hyper-parameters);
then the command-line overrides. Keys our YAML sets must exist in verl's config or in the
generated layer, so a misspelt key fails with its name instead of being silently added.

`--dry-run` composes, checks and prints the resolved config without Ray or a GPU."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import functools
import importlib.util
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir, initialize_config_module
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from vagen.config import from_dict
from vagen.rewards.shaping import ShapingConfig
from vagen.rollout.backends.base import SamplingParams
from vagen.trainer.advantages import AdvantageConfig
from vagen.trainer.losses import PolicyLossConfig
from vagen.trainer.trajectory_log import ViewConfig
from vagen.trainer.verl.budget import fit_to_env_groups

CONFIG_DIR = Path(__file__).resolve().parent / "config"
CONFIG_NAMES = ("video_ppo", "video_grpo")
GENERATED_NODE = "vagen_defaults"
# verl keys whose values are open mappings: any sub-key is allowed.
OPEN_MAPPINGS = tuple(f"{key}." for key in (
    "actor_rollout_ref.rollout.engine_kwargs", "data.apply_chat_template_kwargs", "ray_kwargs"))
# vagen's KL estimator names -> verl's `kl_loss_type`.
VERL_KL_NAMES = {"k1": "kl", "k2": "mse", "low_var_kl": "low_var_kl"}


def generated_defaults() -> dict[str, Any]:
    """The config layer generated from vagen's dataclasses, merged over verl's defaults."""
    from vagen.trainer.verl.agent_loop import AGENT_NAME, VerlAgentConfig

    advantage, loss, sampling = AdvantageConfig(), PolicyLossConfig(), SamplingParams()
    return {
        # env_config: the env groups the rows were made from (run_7B.sh passes ENV_CONFIG);
        # the image limit and the length checks are computed from it (budget.py).
        "vagen": {"agent": VerlAgentConfig().to_dict(), "rewards": "env",
                  "shaping": asdict(ShapingConfig()), "env_config": None,
                  "view": asdict(ViewConfig())},
        "algorithm": {"gamma": advantage.gamma, "lam": advantage.lam,
                      "norm_adv_by_std_in_grpo": advantage.norm_by_std,
                      "high_level_gamma": advantage.high_level_gamma},
        "actor_rollout_ref": {
            "actor": {"clip_ratio_low": loss.clip_ratio_low,
                      "clip_ratio_high": loss.clip_ratio_high,
                      "loss_agg_mode": loss.loss_agg_mode,
                      "kl_loss_type": VERL_KL_NAMES[loss.kl_estimator],
                      "kl_loss_coef": loss.kl_coef,
                      "entropy_coeff": loss.entropy_coef},
            "rollout": {"temperature": sampling.temperature, "top_p": sampling.top_p,
                        "agent": {
                            "default_agent_loop": AGENT_NAME,
                            "agent_loop_config_path": str(CONFIG_DIR / "agent_loop.yaml"),
                            "agent_loop_manager_class":
                                "vagen.trainer.verl.agent_loop.VideoAgentLoopManager"}}},
        "reward": {"custom_reward_function": {"path": "pkg://vagen.trainer.verl.reward",
                                              "name": "compute_score"}},
        # verl's v1 trainer needs TransferQueue, which we do not install.
        "trainer": {"use_v1": False},
    }


def compose_config(config_name: str, overrides: list[str] | None = None,
                   config_dir: Path = CONFIG_DIR) -> DictConfig:
    """verl's config + generated defaults + `<config_dir>/<config_name>.yaml` (which lists
    `common.yaml` first) + overrides."""
    if not (config_dir / f"{config_name}.yaml").is_file():
        raise ValueError(f"unknown config '{config_name}' in {config_dir}; choose from "
                         f"{', '.join(CONFIG_NAMES)}")
    ConfigStore.instance().store(name=GENERATED_NODE, node=generated_defaults())
    check_keys(config_dir / f"{config_name}.yaml")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base=None):
            return compose(config_name=config_name, overrides=list(overrides or []))
    finally:
        GlobalHydra.instance().clear()


def check_keys(path: Path) -> None:
    """Every key the YAML at `path` (and the YAMLs of its folder it lists in `defaults`)
    sets must exist in verl's config or the generated layer; else a ValueError naming the key
    and its nearest valid spelling."""
    known = _known_keys()
    ours = OmegaConf.to_container(OmegaConf.load(path))
    for name in ours.pop("defaults", []):
        if isinstance(name, str) and (path.parent / f"{name}.yaml").is_file():
            check_keys(path.parent / f"{name}.yaml")
    ours.pop("hydra", None)
    for key in _key_paths(ours):
        if key not in known and not key.startswith(OPEN_MAPPINGS):
            near = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean '{near[0]}'?" if near else ""
            raise ValueError(f"{path.name}: key '{key}' is not in verl 0.9.1's config nor "
                             f"vagen's{hint}")


@functools.cache
def _known_keys() -> frozenset[str]:
    """Key paths of verl's `ppo_trainer` config and of the generated layer."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module("verl.trainer.config", version_base=None):
            base = compose(config_name="ppo_trainer")
    finally:
        GlobalHydra.instance().clear()
    return frozenset(_key_paths(OmegaConf.to_container(base, resolve=False))
                     + _key_paths(generated_defaults()))


def _key_paths(tree: Any, prefix: str = "") -> list[str]:
    """Dotted paths of every leaf and every mapping in a nested dict."""
    paths = []
    if isinstance(tree, dict):
        for key, value in tree.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            paths.append(path)
            paths += _key_paths(value, path)
    return paths


def check_config(config: DictConfig, load_model: bool = True) -> None:
    """Cross-key checks verl would only trip over on the cluster. verl's own
    `validate_config` loads the model's config, so it runs only with `load_model`."""
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    from vagen.trainer.verl.advantages import verl_needs_values
    from vagen.trainer.verl.agent_loop import VerlAgentConfig
    from vagen.trainer.verl.shaping import shaping_config

    VerlAgentConfig.from_dict(config.vagen.agent)
    shaping_config(config.vagen)
    from_dict(ViewConfig, dict(config.vagen.get("view") or {}), "vagen.view.")
    estimator = config.algorithm.adv_estimator
    if verl_needs_values(estimator) and config.critic.enable is not True:
        raise ValueError(f"algorithm.adv_estimator={estimator} needs critic values; set "
                         "critic.enable=true")
    if config.data.get("mm_processor_kwargs"):
        raise ValueError("data.mm_processor_kwargs must stay empty: the agent loop renders "
                         "image tokens with the processor's own settings (set max_pixels in "
                         "the env config instead)")
    if load_model:
        validate_config(config=config, use_reference_policy=need_reference_policy(config),
                        use_critic=need_critic(config))


def missing_gpu_packages(config: DictConfig) -> list[str]:
    """Distributions the run's GPU workers import that this Python lacks: vLLM for the
    rollout, flash-attn for verl's FSDP engine and critic loader (flash_attention_2)."""
    needed = {"flash_attn": "flash-attn"}
    if config.actor_rollout_ref.rollout.name == "vllm":
        needed["vllm"] = "vllm"
    return [dist for module, dist in needed.items() if importlib.util.find_spec(module) is None]


def run(config: DictConfig) -> None:
    """Start (or join, with RAY_ADDRESS) a Ray cluster and train."""
    import ray
    from verl.trainer.main_ppo import run_ppo
    from verl.trainer.main_ppo_v0 import TaskRunner

    class VagenTaskRunner(TaskRunner.__ray_actor_class__):
        """verl's TaskRunner with vagen's estimators installed in its process, where
        verl computes advantages."""

        def run(self, config: DictConfig) -> None:
            from vagen.trainer.verl.advantages import install
            from vagen.trainer.verl.shaping import shaping_config
            from vagen.trainer.verl.view import VerlTrajectoryLog

            install(shaping_config(config.vagen),
                    VerlTrajectoryLog(config.vagen, config.trainer.default_local_dir))
            super().run(config)

    run_ppo(config, task_runner_class=ray.remote(VagenTaskRunner))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vagen.trainer.verl.main",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--config-name", default="video_ppo", choices=CONFIG_NAMES,
                        help="config/<name>.yaml on top of verl's ppo_trainer")
    parser.add_argument("--dry-run", action="store_true",
                        help="compose, check and print the resolved config; start nothing")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, key=value")
    args = parser.parse_args(argv)
    from verl.utils.device import auto_set_device

    try:
        config = compose_config(args.config_name, args.overrides)
        model = Path(str(config.actor_rollout_ref.model.path)).expanduser()
        load_model = not args.dry_run or model.is_dir()
        if not load_model:
            print(f"dry run: {model} is not a local folder, so verl's validate_config (which "
                  "reads the model's config) was skipped", file=sys.stderr)
        if not args.dry_run:
            auto_set_device(config)
        with contextlib.redirect_stdout(sys.stderr):  # verl's checks print; stdout: config
            check_config(config, load_model)
        if config.vagen.env_config:
            fit_to_env_groups(config)
        elif not args.dry_run:
            raise ValueError("vagen.env_config is not set: give the env config the rows were "
                             "made from (run_7B.sh passes ENV_CONFIG); the image limit and the "
                             "length checks come from its groups")
        missing = missing_gpu_packages(config)
        if missing:
            message = (f"{', '.join(missing)} not installed here; the training workers need "
                       "them (bash install.sh --gpu)")
            if not args.dry_run:
                raise ValueError(message)
            print(f"dry run: {message}", file=sys.stderr)
        # Resolved here: ${oc.env:...} must read this process's environment, not a Ray
        # worker's.
        OmegaConf.resolve(config)
    except (ValueError, ConfigCompositionException, OmegaConfBaseException) as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    if args.dry_run:
        printed = config.copy()
        if printed.vagen.agent.server_token:
            printed.vagen.agent.server_token = "***"
        print(OmegaConf.to_yaml(printed))
        return 0
    run(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
