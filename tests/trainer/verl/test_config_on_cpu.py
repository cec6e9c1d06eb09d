"""Our configs composed with verl 0.9.1's Hydra config: every key resolves, verl's own
`validate_config` accepts them, defaults come from vagen's dataclasses, Video-MTR's values
are what the run sets, and wrong keys fail with their name."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from hydra.errors import ConfigCompositionException
from hydra.utils import get_class
from omegaconf import OmegaConf

from vagen.env.video_qa.protocols import stop_strings
from vagen.rewards.shaping import ShapingConfig
from vagen.trainer.losses import PolicyLossConfig
from vagen.trainer.verl.agent_loop import AGENT_NAME, VerlAgentConfig, VideoEnvAgentLoop
from vagen.trainer.verl.main import CONFIG_DIR, check_config, compose_config
from vagen.trainer.verl.shaping import shaping_config

RUN_ENV_CONFIG = Path(__file__).parents[3] / "scripts/video_ppo/env_config.yaml"


@pytest.fixture(scope="module")
def grpo_config(model_dir):
    return compose_config("video_grpo", [f"actor_rollout_ref.model.path={model_dir}"])


def test_every_key_resolves_and_verl_validates_both_configs(verl_config, grpo_config):
    for config in (verl_config, grpo_config):
        OmegaConf.to_container(config, resolve=True, throw_on_missing=True)
        check_config(config)  # includes verl's validate_config (reads the tiny model)


def test_video_mtr_hyper_parameters(verl_config):
    c = verl_config
    assert c.data.train_batch_size == 16
    assert c.actor_rollout_ref.actor.optim.lr == 1e-6 and c.critic.optim.lr == 1e-5
    assert c.algorithm.use_kl_in_reward and c.algorithm.kl_ctrl.kl_coef == 0.001
    assert c.actor_rollout_ref.rollout.temperature == 0.7
    assert c.trainer.total_training_steps == 500 and c.trainer.n_gpus_per_node == 8
    assert c.algorithm.adv_estimator == "bi_level_gae" and c.critic.enable is True
    assert c.algorithm.high_level_gamma == 1.0  # the released code's, not the default 0.95
    assert c.trainer.use_v1 is False
    assert c.vagen.rewards == "video_mtr"
    assert shaping_config(c.vagen) == ShapingConfig()  # the released code's weights


def test_defaults_come_from_vagens_dataclasses(verl_config):
    loss = PolicyLossConfig()
    actor = verl_config.actor_rollout_ref.actor
    assert (actor.clip_ratio_low, actor.clip_ratio_high) == (loss.clip_ratio_low,
                                                             loss.clip_ratio_high)
    assert actor.loss_agg_mode == loss.loss_agg_mode and actor.kl_loss_type == "low_var_kl"
    agent = VerlAgentConfig.from_dict(verl_config.vagen.agent)
    assert agent.stop == list(stop_strings())


def test_grpo_variant(grpo_config, verl_config):
    c = grpo_config
    assert c.vagen.rewards == "env" and shaping_config(c.vagen) is None
    assert c.algorithm.adv_estimator == "grpo_turn" and c.critic.enable is False
    assert c.actor_rollout_ref.rollout.n == 8 and c.actor_rollout_ref.actor.use_kl_loss
    assert c.actor_rollout_ref.actor.kl_loss_coef == 0.001 and not c.algorithm.use_kl_in_reward
    assert c.data.max_prompt_length == 4096


def test_verl_finds_our_agent_loop_and_reward(verl_config):
    agent = verl_config.actor_rollout_ref.rollout.agent
    registry = OmegaConf.load(agent.agent_loop_config_path)
    assert [entry.name for entry in registry] == [AGENT_NAME] == [agent.default_agent_loop]
    assert get_class(registry[0]._target_) is VideoEnvAgentLoop
    manager = get_class(agent.agent_loop_manager_class)
    assert manager.__name__ == "VideoAgentLoopManager"
    assert verl_config.reward.custom_reward_function.path == "pkg://vagen.trainer.verl.reward"


def test_a_misspelt_key_in_our_yaml_fails_with_its_name(tmp_path: Path):
    config_dir = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config_dir)
    yaml = OmegaConf.load(config_dir / "common.yaml")  # video_ppo.yaml lists it
    yaml.actor_rollout_ref.rollout.temprature = 0.5
    OmegaConf.save(yaml, config_dir / "common.yaml")
    with pytest.raises(ValueError, match=r"common.yaml: key 'actor_rollout_ref.rollout."
                                         r"temprature'.*did you mean '.*rollout.temperature'"):
        compose_config("video_ppo", config_dir=config_dir)


def test_wrong_keys_on_the_command_line_fail_with_their_name(model_dir):
    with pytest.raises(ConfigCompositionException, match="actor_rollout_ref.rollout.temprature"):
        compose_config("video_ppo", ["actor_rollout_ref.rollout.temprature=0.5"])
    with pytest.raises(ConfigCompositionException, match="vagen.agent.max_turn"):
        compose_config("video_ppo", ["vagen.agent.max_turn=2"])
    with pytest.raises(ValueError, match="unknown config 'video_pp'"):
        compose_config("video_pp")


def test_cross_key_checks_say_what_to_change(model_dir):
    config = compose_config("video_ppo", [f"actor_rollout_ref.model.path={model_dir}",
                                          "critic.enable=false"])
    with pytest.raises(ValueError, match="bi_level_gae needs critic values; set critic.enable"):
        check_config(config, load_model=False)
    with pytest.raises(ValueError, match="vagen.agent: unknown key 'max_turn'; valid keys"):
        VerlAgentConfig.from_dict({"max_turn": 2})
    with pytest.raises(ValueError, match="vagen.agent.env_servers is empty"):
        VerlAgentConfig.from_dict({"env_servers": []})


def test_the_run_env_groups_are_valid_and_set_the_image_limit(model_dir):
    """scripts/video_ppo/env_config.yaml: Video-MTR's 3 turns with every frame kept and 512
    tokens a turn; vLLM's image limit is computed from it (16 opening + 2 x 8 retrieved)."""
    from vagen.env import load_env_groups
    from vagen.env.video_qa.config import VideoQAConfig
    from vagen.trainer.verl.budget import fit_to_env_groups

    groups = load_env_groups(RUN_ENV_CONFIG)
    assert sorted(groups) == ["video-mtr-test", "video-mtr-train"]
    for group in groups.values():
        context = VideoQAConfig.from_dict(group).context()
        assert (context.max_turns, context.window, context.max_new_tokens) == (3, None, 512)
    for name in ("video_ppo", "video_grpo"):
        config = compose_config(name, [f"vagen.env_config={RUN_ENV_CONFIG}",
                                       f"actor_rollout_ref.model.path={model_dir}"])
        fit_to_env_groups(config)
        assert config.actor_rollout_ref.rollout.engine_kwargs.vllm.limit_mm_per_prompt == {
            "image": 32}


def test_lengths_that_cannot_hold_the_env_groups_fail_naming_both_sides(model_dir):
    from vagen.trainer.verl.budget import fit_to_env_groups

    model = f"actor_rollout_ref.model.path={model_dir}"
    short = compose_config("video_grpo", [f"vagen.env_config={RUN_ENV_CONFIG}", model,
                                          "data.max_response_length=2048"])
    with pytest.raises(ValueError, match=r"data.max_response_length=2048 cannot hold env "
                                         r"group 'video-mtr-\w+''s later turns.*"
                                         r"max_new_tokens=512 = 3584 tokens"):
        fit_to_env_groups(short)
    few = compose_config("video_grpo", [
        f"vagen.env_config={RUN_ENV_CONFIG}", model,
        "+actor_rollout_ref.rollout.engine_kwargs.vllm.limit_mm_per_prompt.image=16"])
    with pytest.raises(ValueError, match=r"limit_mm_per_prompt.image=16 is below the 32 "
                                         r"frames"):
        fit_to_env_groups(few)


def test_training_needs_the_env_config(monkeypatch, capsys, model_dir):
    from vagen.trainer.verl.main import main

    monkeypatch.setenv("MODEL_PATH", str(model_dir))
    with pytest.raises(SystemExit):
        main([])
    assert "vagen.env_config is not set" in capsys.readouterr().err


def test_the_model_comes_from_model_path(monkeypatch, capsys, model_dir):
    from vagen.trainer.verl.main import main

    monkeypatch.delenv("MODEL_PATH", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main(["--dry-run"])
    assert exit_info.value.code == 2
    assert "MODEL_PATH" in capsys.readouterr().err
    monkeypatch.setenv("MODEL_PATH", str(model_dir))
    assert main(["--dry-run"]) == 0  # video_ppo, whose critic is the same checkpoint
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["actor_rollout_ref"]["model"]["path"] == str(model_dir)
    assert printed["critic"]["model"]["path"] == str(model_dir)


def test_a_run_without_the_gpu_packages_stops_before_ray_naming_them(monkeypatch, capsys,
                                                                      model_dir):
    import importlib.util

    from vagen.trainer.verl.main import main

    if importlib.util.find_spec("vllm") or importlib.util.find_spec("flash_attn"):
        pytest.skip("the GPU packages are installed here")
    monkeypatch.setenv("MODEL_PATH", str(model_dir))
    monkeypatch.setattr("vagen.trainer.verl.main.run", lambda config: pytest.fail("started"))
    with pytest.raises(SystemExit) as exit_info:
        main([f"vagen.env_config={RUN_ENV_CONFIG}"])
    assert exit_info.value.code == 2
    assert "flash-attn, vllm not installed here" in capsys.readouterr().err
    assert main(["--dry-run"]) == 0
    assert "dry run: flash-attn, vllm not installed" in capsys.readouterr().err
