"""vagen's estimators in verl's registry, called as verl's trainer calls them, on
hand-computed examples."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tensordict import TensorDict
from verl.protocol import DataProto
from verl.trainer.ppo import core_algos, ray_trainer

from vagen.rewards.shaping import ShapingConfig
from vagen.trainer.advantages import AdvantageConfig
from vagen.trainer.verl.advantages import (
    ESTIMATORS,
    advantage_config,
    compute_advantage,
    install,
    register_estimators,
)
from vagen.trainer.verl.shaping import TURN_INFOS, shaping_config, turn_info


# What the agent loop records for A (a fetch that raises the frame IoU 0.1 -> 0.6, then a
# correct answer) and B (a wrong answer), with the env rewards of REWARDS.
def _turn(turn: int, action_type: str, correct: bool, frames_iou: float | None) -> dict:
    return turn_info({"valid_action": True, "turn": turn, "frames_seen": 16, "answer": None,
                      "action_type": action_type, "correct": correct,
                      "frames_iou": frames_iou, "initial_iou": 0.1, "seen_times": [1.0]})


TURN_INFO_ROWS = [[_turn(1, "retrieve", False, 0.6), _turn(2, "answer", True, None)],
                  [_turn(1, "answer", False, None)]]


def objects(rows: list) -> np.ndarray:
    array = np.empty(len(rows), dtype=object)
    array[:] = rows
    return array

# Two rollouts of one prompt. A: two turns (rewards 0.5, then 1) with env tokens between;
# B: one turn (reward 0.5). Each turn's reward is on its last policy token.
MASK = torch.tensor([[1, 1, 0, 0, 1, 0], [1, 1, 1, 0, 0, 0]])
REWARDS = torch.tensor([[0, 0.5, 0, 0, 1, 0], [0, 0, 0.5, 0, 0, 0]])
UIDS = np.array(["p", "p"], dtype=object)


def batch(**tensors: torch.Tensor) -> DataProto:
    data = {"token_level_rewards": REWARDS, "response_mask": MASK, **tensors}
    return DataProto(batch=TensorDict(data, batch_size=2), non_tensor_batch={"uid": UIDS})


def test_registration_is_idempotent_and_uses_the_wrappers():
    register_estimators()
    register_estimators()
    for name, fn in ESTIMATORS.items():
        assert core_algos.get_adv_estimator_fn(name) is fn


def test_verl_algorithm_keys_map_to_advantage_config():
    config = advantage_config({"gamma": 0.9, "lam": 0.8, "norm_adv_by_std_in_grpo": False,
                               "high_level_gamma": 0.5, "adv_estimator": "grpo_turn"})
    assert (config.gamma, config.lam, config.norm_by_std, config.high_level_gamma) == \
        (0.9, 0.8, False, 0.5)
    assert advantage_config(None) == AdvantageConfig()


def test_grpo_turn_compares_turns_at_the_same_position_in_the_group():
    register_estimators()
    advantages, returns = core_algos.get_adv_estimator_fn("grpo_turn")(
        token_level_rewards=REWARDS, response_mask=MASK, index=UIDS,
        config={"high_level_gamma": 1.0})
    # Turn-1 returns 1.5 (A) and 0.5 (B): mean 1.0, unbiased std 0.7071 -> +-0.7071.
    # A's turn 2 has no peer at its position -> 0.
    a = 0.5 / np.sqrt(0.5)
    np.testing.assert_allclose(advantages, [[a, a, 0, 0, 0, 0], [-a, -a, -a, 0, 0, 0]],
                               atol=1e-5)
    np.testing.assert_allclose(returns, [[1.5, 1.5, 0, 0, 1, 0], [0.5, 0.5, 0.5, 0, 0, 0]])


def test_bi_level_gae_gets_the_critic_values_through_compute_advantage():
    register_estimators()
    values = torch.tensor([[0.1, 0.2, 0, 0, 0.3, 0], [0.1, 0.1, 0.1, 0, 0, 0]])
    config = {"gamma": 1.0, "lam": 1.0, "high_level_gamma": 1.0, "whiten": False}
    out = compute_advantage(batch(values=values), "bi_level_gae", config=config)
    # A: turn GAE over rewards (0.5, 1) with turn values (0.2, 0.3): A1 = 1 - 0.3 = 0.7,
    # A0 = 0.5 + 0.3 - 0.2 + 0.7 = 1.3; targets 1.5 and 1.0 sit on each turn's last token and
    # token GAE runs inside each turn: 0 + 0.2 - 0.1 + 1.3 = 1.4, 1.5 - 0.2 = 1.3; 1.0 - 0.3.
    assert out.batch["advantages"][0].tolist() == pytest.approx([1.4, 1.3, 0, 0, 0.7, 0])
    assert out.batch["returns"][0].tolist() == pytest.approx([1.5, 1.5, 0, 0, 1.0, 0])
    with pytest.raises(ValueError, match="critic.enable=true"):
        compute_advantage(batch(), "bi_level_gae", config=config)


def test_other_estimators_go_to_verl_unchanged():
    ours = compute_advantage(batch(), "grpo", config={"norm_adv_by_std_in_grpo": True})
    theirs = ray_trainer.compute_advantage(batch(), "grpo", config={})
    assert torch.equal(ours.batch["advantages"], theirs.batch["advantages"])


def test_install_routes_verls_trainer_through_ours(monkeypatch):
    monkeypatch.setattr(ray_trainer, "compute_advantage", ray_trainer.compute_advantage)
    install()
    assert ray_trainer.compute_advantage is compute_advantage
    assert core_algos.get_adv_estimator_fn("bi_level_gae") is ESTIMATORS["bi_level_gae"]


def test_video_mtr_shaping_replaces_each_turns_env_reward_and_keeps_other_terms():
    register_estimators()
    data = batch()
    kl_penalty = torch.zeros_like(REWARDS)
    kl_penalty[0, 0] = -0.01  # a term verl added on another token stays
    data.batch["token_level_rewards"] = REWARDS + kl_penalty
    data.non_tensor_batch[TURN_INFOS] = objects(TURN_INFO_ROWS)
    data.non_tensor_batch["turn_scores"] = objects([[0.5, 1.0], [0.5]])
    out = compute_advantage(data, "grpo", config={"norm_adv_by_std_in_grpo": True},
                            shaping=ShapingConfig())
    # A: format 0.1 + IoU gain 0.5 (paid: the answer is correct); format 0.1 + answer at turn
    # 2 (1.0 - 0.1). B: format 0.1. Half the batch retrieves: no exploration bonus.
    assert torch.allclose(out.batch["token_level_rewards"], torch.tensor(
        [[-0.01, 0.6, 0, 0, 1.0, 0], [0, 0, 0.1, 0, 0, 0]]))
    assert out.batch["advantages"][0, 0] > 0 > out.batch["advantages"][1, 0]

    data.non_tensor_batch["turn_scores"] = objects([[0.5], [0.5]])
    with pytest.raises(ValueError, match="row 0: 2 turns in response_mask but 1 turn scores"):
        compute_advantage(data, "grpo", config={}, shaping=ShapingConfig())


def test_shaping_is_chosen_and_checked_in_the_vagen_section(monkeypatch):
    assert shaping_config({"rewards": "env"}) is None
    assert shaping_config(None) is None
    chosen = shaping_config({"rewards": "video_mtr", "shaping": {"iou_reward": 0.25}})
    assert chosen == ShapingConfig(iou_reward=0.25)
    with pytest.raises(ValueError, match="vagen.rewards is 'shaped'"):
        shaping_config({"rewards": "shaped"})
    with pytest.raises(ValueError, match="vagen.shaping.turn_discount"):
        shaping_config({"rewards": "video_mtr", "shaping": {"turn_discount": 0.95}})
    with pytest.raises(ValueError, match="vagen.shaping.iou_bonus"):
        shaping_config({"rewards": "video_mtr", "shaping": {"iou_bonus": 1.0}})
    monkeypatch.setattr(ray_trainer, "compute_advantage", ray_trainer.compute_advantage)
    install(chosen)
    assert ray_trainer.compute_advantage.func is compute_advantage
    assert ray_trainer.compute_advantage.keywords == {"shaping": chosen, "view_log": None}


def test_a_dropped_trajectory_moves_no_baseline_of_its_group():
    """A (reward 1.5) and B (0.5) as above, plus a third rollout of the prompt that failed
    (the agent loop's stand-in: no policy token, score 0). Under verl's grpo the survivors'
    advantages are those of the two-rollout group (grpo_turn has no turn of it to count)."""
    estimator = "grpo"
    from vagen.trainer.verl.agent_loop import FAILED

    register_estimators()
    config = {"norm_adv_by_std_in_grpo": True, "high_level_gamma": 1.0}
    two = compute_advantage(batch(), estimator, config=config)
    data = {"token_level_rewards": torch.cat([REWARDS, torch.zeros(1, 6)]),
            "response_mask": torch.cat([MASK, torch.zeros(1, 6, dtype=MASK.dtype)])}
    three = compute_advantage(DataProto(
        batch=TensorDict(data, batch_size=3),
        non_tensor_batch={"uid": objects(["p", "p", "p"]),
                          FAILED: objects(["", "", "env_error"])}), estimator, config=config)
    torch.testing.assert_close(three.batch["advantages"][:2], two.batch["advantages"])
    assert torch.all(three.batch["advantages"][2] == 0)
