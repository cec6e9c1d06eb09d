"""Advantage estimators and losses against small hand-computed examples (numbers written
out in the comments), and the registries' errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vagen.trainer.advantages import AdvantageConfig, turn_ids_from_loss_mask
from vagen.trainer.algos import (
    ADVANTAGE_ESTIMATORS,
    KL_ESTIMATORS,
    LOSS_AGGREGATIONS,
    POLICY_LOSSES,
    Registry,
    get_advantage_estimator,
    get_kl_estimator,
    get_loss_aggregation,
)
from vagen.trainer.losses import (
    PolicyLossConfig,
    actor_loss,
    entropy_from_logits,
    ppo_clip,
    step_if_finite,
    value_loss,
)

RAW = dict(whiten=False)  # hand-computed GAE numbers are before whitening

# Two turns of two policy tokens with one env token between them.
TWO_TURN_MASK = torch.tensor([[1.0, 1, 0, 1, 1]])
TWO_TURN_IDS = torch.tensor([[0, 0, -1, 1, 1]])


def close(actual: torch.Tensor, expected: list) -> None:
    torch.testing.assert_close(actual, torch.tensor(expected), atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------- registries

def test_registries_hold_the_documented_names() -> None:
    assert ADVANTAGE_ESTIMATORS.names() == ["bi_level_gae", "grpo", "grpo_turn", "masked_gae"]
    assert KL_ESTIMATORS.names() == ["k1", "k2", "low_var_kl"]
    assert POLICY_LOSSES.names() == ["ppo_clip"]
    assert LOSS_AGGREGATIONS.names() == ["seq-mean-token-mean", "token-mean"]


def test_registry_rejects_duplicates_and_lists_valid_names_for_unknown() -> None:
    registry: Registry = Registry("widget")
    registry.register("a")(lambda: 1)
    with pytest.raises(ValueError, match="widget 'a' is already registered"):
        registry.register("a")(lambda: 2)
    with pytest.raises(KeyError, match="unknown widget 'b'; registered: a"):
        registry.get("b")
    with pytest.raises(KeyError, match="registered: bi_level_gae, grpo, grpo_turn, masked_gae"):
        get_advantage_estimator("gae")
    with pytest.raises(ValueError, match="advantage estimator 'grpo' is already registered"):
        ADVANTAGE_ESTIMATORS.register("grpo")(lambda: None)


def test_configs_name_the_bad_key() -> None:
    with pytest.raises(ValueError, match="kl_estimator: unknown KL estimator 'k3'; registered: "
                                         "k1, k2, low_var_kl"):
        PolicyLossConfig(kl_estimator="k3")
    with pytest.raises(ValueError, match="loss_agg_mode: unknown loss aggregation"):
        PolicyLossConfig(loss_agg_mode="sum")
    with pytest.raises(ValueError, match="clip_ratio_c is 0.5; set it > 1"):
        PolicyLossConfig(clip_ratio_c=0.5)
    with pytest.raises(ValueError, match="high_level_gamma is 1.5"):
        AdvantageConfig(high_level_gamma=1.5)


# ----------------------------------------------------------------------------- grpo

def test_grpo_group_of_four_rewards() -> None:
    # rewards [1, 0, 0, 1]: mean 0.5, unbiased std sqrt(4 * 0.25 / 3) = 0.57735
    # -> (1 - 0.5) / 0.57735 = +0.866, (0 - 0.5) / 0.57735 = -0.866
    rewards = torch.tensor([[0.0, 1], [0, 0], [0, 0], [0, 1]])
    mask = torch.ones(4, 2)
    grpo = get_advantage_estimator("grpo")
    advantages, returns = grpo(rewards, mask, group_ids=[7, 7, 7, 7], config=AdvantageConfig())
    close(advantages, [[0.866025] * 2, [-0.866025] * 2, [-0.866025] * 2, [0.866025] * 2])
    close(returns, [[1.0, 1], [0, 0], [0, 0], [1, 1]])
    centred, _ = grpo(rewards, mask, group_ids=[7, 7, 7, 7],
                      config=AdvantageConfig(norm_by_std=False))
    close(centred[:, 0], [0.5, -0.5, -0.5, 0.5])


def test_grpo_groups_by_verl_uid_strings_and_masks_env_tokens() -> None:
    # group "a": rewards 2 and 0 -> mean 1, std sqrt(2) -> +-0.7071; group "b": 3 and 1 -> same.
    # Row 0's env token (mask 0) gets 0; a lone group ("c") has nothing to compare with -> 0.
    rewards = torch.tensor([[0.0, 0, 2], [0, 0, 0], [0, 0, 3], [0, 0, 1], [0, 0, 5]])
    mask = torch.tensor([[1.0, 0, 1]] + [[1.0, 1, 1]] * 4)
    uids = np.array(["a", "a", "b", "b", "c"], dtype=object)
    advantages, _ = get_advantage_estimator("grpo")(rewards, mask, group_ids=uids,
                                                     config=AdvantageConfig())
    close(advantages[:, 0], [0.707106, -0.707106, 0.707106, -0.707106, 0.0])
    close(advantages[0], [0.707106, 0.0, 0.707106])


def test_reward_outside_loss_mask_is_an_error() -> None:
    with pytest.raises(ValueError, match="1 nonzero rewards lie outside loss_mask"):
        get_advantage_estimator("grpo")(torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 0.0]]),
                                        group_ids=[0], config=AdvantageConfig())
    with pytest.raises(ValueError, match="group_ids has 2 entries; expected one per"):
        get_advantage_estimator("grpo")(torch.zeros(1, 2), torch.ones(1, 2), group_ids=[0, 1],
                                        config=AdvantageConfig())
    with pytest.raises(ValueError, match="values is required"):
        get_advantage_estimator("masked_gae")(torch.zeros(1, 2), torch.ones(1, 2),
                                              config=AdvantageConfig())


# ----------------------------------------------------------------------------- grpo_turn

def test_grpo_turn_two_trajectories_two_turns() -> None:
    # high_level_gamma 0.5. Trajectory A turn rewards [0.5, 1.0] -> returns G0 = 0.5 + 0.5 * 1
    # = 1.0, G1 = 1.0; trajectory B [0.5, 0.0] -> G0 = 0.5, G1 = 0.0.
    # Turn 0: [1.0, 0.5] mean 0.75 -> +-0.25; turn 1: [1.0, 0.0] mean 0.5 -> +-0.5.
    # With std: turn 0 std 0.35355 -> +-0.7071; turn 1 std 0.7071 -> +-0.7071.
    rewards = torch.tensor([[0.0, 0.5, 0, 0, 1.0], [0.0, 0.5, 0, 0, 0.0]])
    inputs = dict(turn_ids=TWO_TURN_IDS.repeat(2, 1), group_ids=["p", "p"])
    grpo_turn = get_advantage_estimator("grpo_turn")
    advantages, returns = grpo_turn(rewards, TWO_TURN_MASK.repeat(2, 1), **inputs,
                                    config=AdvantageConfig(high_level_gamma=0.5,
                                                           norm_by_std=False))
    close(advantages, [[0.25, 0.25, 0, 0.5, 0.5], [-0.25, -0.25, 0, -0.5, -0.5]])
    close(returns, [[1.0, 1.0, 0, 1.0, 1.0], [0.5, 0.5, 0, 0.0, 0.0]])
    scaled, _ = grpo_turn(rewards, TWO_TURN_MASK.repeat(2, 1), **inputs,
                          config=AdvantageConfig(high_level_gamma=0.5))
    close(scaled, [[0.707103, 0.707103, 0, 0.707106, 0.707106],
                   [-0.707103, -0.707103, 0, -0.707106, -0.707106]])


def test_grpo_turn_position_reached_by_one_trajectory_gets_zero() -> None:
    # B answers in one turn (reward 0.5, tokens 0-1, then padding). A: G0 = 1.0 vs B: 0.5
    # -> +-0.25 at turn 0; only A has a turn 1 -> 0 there.
    rewards = torch.tensor([[0.0, 0.5, 0, 0, 1.0], [0.0, 0.5, 0, 0, 0.0]])
    mask = torch.tensor([[1.0, 1, 0, 1, 1], [1.0, 1, 0, 0, 0]])
    advantages, _ = get_advantage_estimator("grpo_turn")(
        rewards, mask, turn_ids=turn_ids_from_loss_mask(mask), group_ids=[0, 0],
        config=AdvantageConfig(high_level_gamma=0.5, norm_by_std=False))
    close(advantages, [[0.25, 0.25, 0, 0, 0], [-0.25, -0.25, 0, 0, 0]])


def test_turn_ids_from_loss_mask_numbers_runs_of_policy_tokens() -> None:
    mask = torch.tensor([[0, 1, 1, 0, 0, 1, 0, 1], [1, 1, 1, 1, 0, 0, 0, 0]])
    assert turn_ids_from_loss_mask(mask).tolist() == [[-1, 0, 0, -1, -1, 1, -1, 2],
                                                      [0, 0, 0, 0, -1, -1, -1, -1]]


def test_decreasing_turn_ids_are_an_error() -> None:
    with pytest.raises(ValueError, match="turn_ids must not decrease"):
        get_advantage_estimator("grpo_turn")(torch.zeros(1, 3), torch.ones(1, 3),
                                             turn_ids=torch.tensor([[1, 0, 0]]), group_ids=[0],
                                             config=AdvantageConfig())


# ----------------------------------------------------------------------------- GAE

def test_masked_gae_three_tokens() -> None:
    # gamma 0.9, lam 0.8 (gamma * lam = 0.72), rewards [0, 0, 1], values [0.5, 0.6, 0.7]
    # t2: delta = 1 - 0.7 = 0.3                      A2 = 0.3
    # t1: delta = 0.9 * 0.7 - 0.6 = 0.03             A1 = 0.03 + 0.72 * 0.3 = 0.246
    # t0: delta = 0.9 * 0.6 - 0.5 = 0.04             A0 = 0.04 + 0.72 * 0.246 = 0.21712
    # returns = A + V = [0.71712, 0.846, 1.0]
    config = AdvantageConfig(gamma=0.9, lam=0.8, **RAW)
    gae = get_advantage_estimator("masked_gae")
    advantages, returns = gae(torch.tensor([[0.0, 0, 1]]), torch.ones(1, 3),
                              values=torch.tensor([[0.5, 0.6, 0.7]]), config=config)
    close(advantages, [[0.21712, 0.246, 0.3]])
    close(returns, [[0.71712, 0.846, 1.0]])
    # An env token (mask 0, value 99) between tokens 0 and 1 is jumped over: same numbers.
    advantages, returns = gae(torch.tensor([[0.0, 0, 0, 1]]), torch.tensor([[1.0, 0, 1, 1]]),
                              values=torch.tensor([[0.5, 99, 0.6, 0.7]]), config=config)
    close(advantages, [[0.21712, 0, 0.246, 0.3]])
    close(returns, [[0.71712, 0, 0.846, 1.0]])


def test_gae_whitening_gives_zero_mean_unit_variance_on_policy_tokens() -> None:
    mask = torch.tensor([[1.0, 0, 1, 1], [1, 1, 0, 0]])
    advantages, _ = get_advantage_estimator("masked_gae")(
        torch.tensor([[0.0, 0, 0, 1], [0, 2, 0, 0]]), mask,
        values=torch.tensor([[0.1, 5, 0.2, 0.3], [0.4, 0.5, 7, 7]]), config=AdvantageConfig())
    policy = advantages[mask.bool()]
    assert abs(policy.mean().item()) < 1e-6
    assert abs(policy.std().item() - 1.0) < 1e-4
    assert advantages[~mask.bool()].abs().max().item() == 0.0


def test_bi_level_gae_two_turns() -> None:
    # gamma 0.9, lam 0.8, high_level_gamma 0.5. Tokens [t0, t0, env, t1, t1], turn rewards
    # r0 = 0.5 (token 1), r1 = 1.0 (token 4), values [0.2, 0.4, 9, 0.3, 0.6].
    # Turn level (turn value = value of its last token: V0 = 0.4, V1 = 0.6):
    #   turn 1: delta = 1.0 - 0.6 = 0.4                         A = 0.4, target 1.0
    #   turn 0: delta = 0.5 + 0.5 * 0.6 - 0.4 = 0.4           A = 0.4 + 0.5*0.8*0.4 = 0.56,
    #           target 0.56 + 0.4 = 0.96
    # Token level, inside each turn, the last token's reward is the turn's target:
    #   token 4: 1.0 - 0.6 = 0.4; token 3: 0.9*0.6 - 0.3 = 0.24 -> 0.24 + 0.72*0.4 = 0.528
    #   token 1: 0.96 - 0.4 = 0.56; token 0: 0.9*0.4 - 0.2 = 0.16 -> 0.16 + 0.72*0.56 = 0.5632
    config = AdvantageConfig(gamma=0.9, lam=0.8, high_level_gamma=0.5, **RAW)
    values = torch.tensor([[0.2, 0.4, 9, 0.3, 0.6]])
    bi_level = get_advantage_estimator("bi_level_gae")
    advantages, returns = bi_level(torch.tensor([[0.0, 0.5, 0, 0, 1.0]]), TWO_TURN_MASK,
                                   turn_ids=TWO_TURN_IDS, values=values, config=config)
    close(advantages, [[0.5632, 0.56, 0, 0.528, 0.4]])
    close(returns, [[0.7632, 0.96, 0, 0.828, 1.0]])
    # A turn with reward 0 is still a turn (VAGEN finds turns by nonzero rewards):
    # turn 0: delta = 0 + 0.3 - 0.4 = -0.1, A = -0.1 + 0.16 = 0.06 on its last token.
    advantages, _ = bi_level(torch.tensor([[0.0, 0, 0, 0, 1.0]]), TWO_TURN_MASK,
                             turn_ids=TWO_TURN_IDS, values=values, config=config)
    close(advantages[0, 1], 0.06)


# ----------------------------------------------------------------------------- policy loss

@pytest.mark.parametrize(
    ("advantage", "ratio", "expected_loss", "clipped"),
    [
        (1.0, 1.5, -1.28, True),  # good token pushed above 1 + 0.28: no more push
        (1.0, 0.5, -0.5, False),  # good token below 1 - 0.2: min(rA, clip(r)A) = rA, keep pushing
        (-1.0, 0.5, 0.8, True),  # bad token pushed below 1 - 0.2: no more push
        (-1.0, 1.5, 1.5, False),  # bad token above the range: max(1.5, 1.28), keep pulling
    ],
)
def test_ppo_clip_one_token(advantage: float, ratio: float, expected_loss: float,
                            clipped: bool) -> None:
    log_prob = torch.tensor([[math.log(ratio)]], requires_grad=True)
    loss, metrics = ppo_clip(torch.zeros(1, 1), log_prob, torch.tensor([[advantage]]),
                             torch.ones(1, 1), PolicyLossConfig())
    assert loss.item() == pytest.approx(expected_loss, abs=1e-6)
    assert metrics["actor/pg_clipfrac"] == float(clipped)
    loss.backward()
    # d(-A r)/d log_prob = -A r when unclipped; zero where the clip is active.
    expected_grad = 0.0 if clipped else -advantage * ratio
    assert log_prob.grad.item() == pytest.approx(expected_grad, abs=1e-6)


def test_ppo_dual_clip_bounds_negative_advantage_loss() -> None:
    # A = -1, ratio 4: plain PPO loss 4.0; dual clip c = 3 caps it at 3.0 with zero gradient.
    log_prob = torch.tensor([[math.log(4.0)]], requires_grad=True)
    loss, metrics = ppo_clip(torch.zeros(1, 1), log_prob, torch.tensor([[-1.0]]),
                             torch.ones(1, 1), PolicyLossConfig(clip_ratio_c=3.0))
    assert loss.item() == pytest.approx(3.0)
    assert metrics["actor/pg_clipfrac_lower"] == 1.0
    loss.backward()
    assert log_prob.grad.item() == 0.0


def test_ppo_metrics_and_token_mean_over_mask() -> None:
    # Ratios 1 everywhere, so the loss is -mean(A) over the 3 policy tokens: -(1 + 2 + 3) / 3.
    advantages = torch.tensor([[1.0, 2.0, 100.0], [3.0, 100.0, 100.0]])
    mask = torch.tensor([[1.0, 1, 0], [1, 0, 0]])
    loss, metrics = ppo_clip(torch.zeros(2, 3), torch.zeros(2, 3), advantages, mask,
                             PolicyLossConfig())
    assert loss.item() == pytest.approx(-2.0)
    assert set(metrics) == {"actor/pg_loss", "actor/pg_clipfrac", "actor/pg_clipfrac_lower",
                            "actor/ppo_kl"}
    assert metrics["actor/ppo_kl"] == 0.0


def test_aggregations() -> None:
    # token-mean: (1 + 2 + 3 + 4) / 4 = 2.5; seq-mean-token-mean: (mean(1,2,3) + 4) / 2 = 3;
    # an all-masked row is not a sequence. With denominator 8 (tokens of the whole step):
    # 10 / 8 = 1.25.
    losses = torch.tensor([[1.0, 2, 3], [4, 9, 9], [9, 9, 9]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 0, 0]])
    assert get_loss_aggregation("token-mean")(losses, mask).item() == pytest.approx(2.5)
    assert get_loss_aggregation("seq-mean-token-mean")(losses, mask).item() == pytest.approx(3.0)
    assert get_loss_aggregation("token-mean")(losses, mask, 8).item() == pytest.approx(1.25)


# ----------------------------------------------------------------------------- KL, entropy

def test_kl_estimators_zero_at_equal_log_probs_and_match_formulas() -> None:
    same = torch.tensor([[-0.3, -2.0]])
    for name in ("k1", "k2", "low_var_kl"):
        assert get_kl_estimator(name)(same, same).abs().max().item() == 0.0
    # log pi = -1, log ref = -2: k1 = 1; k2 = 0.5 * 1^2 = 0.5;
    # k3 = ref/pi - log(ref/pi) - 1 = e^-1 + 1 - 1 = 0.367879
    log_prob, ref = torch.tensor([[-1.0]]), torch.tensor([[-2.0]])
    assert get_kl_estimator("k1")(log_prob, ref).item() == pytest.approx(1.0)
    assert get_kl_estimator("k2")(log_prob, ref).item() == pytest.approx(0.5)
    assert get_kl_estimator("low_var_kl")(log_prob, ref).item() == pytest.approx(math.exp(-1))
    # log ref - log pi = -30 is clamped to -20: e^-20 + 20 - 1 = 19 -> result clamped to 10.
    assert get_kl_estimator("low_var_kl")(torch.zeros(1, 1), torch.full((1, 1), -30.0)).item() \
        == pytest.approx(10.0)


def test_entropy_from_logits() -> None:
    # uniform over 4 -> log 4 = 1.386294; one-hot-like (others -inf) -> 0, not NaN.
    logits = torch.tensor([[[0.0, 0, 0, 0], [5.0, -math.inf, -math.inf, -math.inf]]])
    close(entropy_from_logits(logits), [[math.log(4), 0.0]])


def test_actor_loss_adds_kl_and_subtracts_entropy() -> None:
    # pg: ratio 1, A = 1 -> -1. KL k1 with log pi - log ref = 0.5 -> 0.5 * kl_coef 0.1 = 0.05.
    # entropy log 4 * 0.01 = 0.013863. total = -1 + 0.05 - 0.013863 = -0.963863
    config = PolicyLossConfig(kl_estimator="k1", kl_coef=0.1, entropy_coef=0.01)
    loss, metrics = actor_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1, 2),
                               torch.ones(1, 2), config, ref_log_prob=torch.full((1, 2), -0.5),
                               logits=torch.zeros(1, 2, 4))
    assert loss.item() == pytest.approx(-1 + 0.05 - 0.01 * math.log(4))
    assert metrics["actor/kl_loss"] == pytest.approx(0.5)
    assert metrics["actor/entropy"] == pytest.approx(math.log(4))
    with pytest.raises(ValueError, match="no ref_log_prob was given"):
        actor_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1, 2), torch.ones(1, 2),
                   config)


def test_value_loss_clips_moves_beyond_the_range() -> None:
    # values 0.5, returns 1.0, clip 0.2: vpred 1.0 -> clipped to 0.7: max(0, 0.09) -> 0.045;
    # vpred 0.6 is inside the range: 0.5 * 0.16 = 0.08. token-mean -> 0.0625, clipfrac 0.5.
    loss, metrics = value_loss(torch.tensor([[1.0, 0.6]]), torch.full((1, 2), 0.5),
                               torch.ones(1, 2), torch.ones(1, 2), cliprange_value=0.2)
    assert loss.item() == pytest.approx(0.0625)
    assert metrics["critic/vf_clipfrac"] == 0.5


# ----------------------------------------------------------------------------- optimizer step

def test_step_if_finite_skips_nan_gradients() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    model(torch.full((1, 3), float("nan"))).sum().backward()
    stepped, norm = step_if_finite(optimizer, model.parameters(), max_grad_norm=1.0)
    assert not stepped and math.isnan(norm)
    for param, old in zip(model.parameters(), before, strict=True):
        assert torch.equal(param, old) and param.grad is None
    # Finite gradients: weight grad = x = (3, 4, 0), bias grad 1 -> norm sqrt(26), then a step.
    model(torch.tensor([[3.0, 4.0, 0.0]])).sum().backward()
    stepped, norm = step_if_finite(optimizer, model.parameters(), max_grad_norm=None)
    assert stepped and norm == pytest.approx(math.sqrt(26))
    close(model.weight.detach() - before[0], [[-0.3, -0.4, 0.0]])


def test_which_estimators_need_a_critic_is_said_where_they_register():
    from vagen.trainer.algos import ADVANTAGE_ESTIMATORS, needs_values

    assert [name for name in ADVANTAGE_ESTIMATORS.names() if needs_values(name)] == [
        "bi_level_gae", "masked_gae"]
