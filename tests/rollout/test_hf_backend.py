"""The transformers backend: batched generation over left-padded multi-image prompts, and
re-scoring a sampled multi-turn trajectory reproducing its sampling log-probs — the usual
silent bug of multi-turn RL (a template re-render, a padding side, a position offset or a
sampling default that differs between the two)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from transformers import GenerationConfig

from tests.rollout.conftest import frame
from vagen.env.base import IMAGE_PLACEHOLDER
from vagen.rollout.backends.base import SamplingParams
from vagen.rollout.backends.hf import HFBackend, left_pad_batch, token_logprobs
from vagen.rollout.tokens import TrajectoryTokens, collate_segments

MAX_NEW_TOKENS = 12


def observation(turn: int, row: int) -> tuple[str, list]:
    """Observations of different lengths and frame counts per row and turn."""
    frames = [frame(20 * row + 60 * turn + i) for i in range(1 + (row + turn) % 2)]
    words = " ".join(["look"] * (1 + 2 * row))
    return (f"Turn {turn} {words}: " + " ".join([IMAGE_PLACEHOLDER] * len(frames)), frames)


def sample_trajectories(backend: HFBackend, codec: Any, sampling: SamplingParams,
                        window: int | None, rows: int = 3, turns: int = 3,
                        ) -> list[TrajectoryTokens]:
    """Play `turns` sampled turns for `rows` trajectories at once, as the manager does."""
    trajectories = [TrajectoryTokens(codec, "You are a video assistant." * (1 + row), window)
                    for row in range(rows)]
    for turn in range(turns):
        for row, trajectory in enumerate(trajectories):
            trajectory.add_observation(*observation(turn, row))
        generations = backend.generate([t.generation_input() for t in trajectories], sampling)
        for trajectory, generation in zip(trajectories, generations, strict=True):
            trajectory.add_response(generation.ids, generation.logprobs, turn)
    return trajectories


def rescoring_error(model: Any, codec: Any, trajectories: list[TrajectoryTokens],
                    temperature: float) -> tuple[float, int]:
    """Largest |re-scored - sampling| log-prob over all trained tokens, and their number."""
    segments = [s for t in trajectories for s in t.segments]
    batch = collate_segments(segments, codec, rope_index=model.model.get_rope_index)
    with torch.no_grad():
        logp, _ = token_logprobs(model, batch, temperature, codec.suppressed_ids)
    mask = batch["loss_mask"].bool()
    return float((logp[mask] - batch["old_logprobs"][mask]).abs().max()), int(mask.sum())


@pytest.mark.parametrize("window", [None, 1])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_rescoring_a_sampled_trajectory_reproduces_its_sampling_logprobs(
        model, codec, temperature, window):
    backend = HFBackend(model, codec)
    sampling = SamplingParams(max_new_tokens=MAX_NEW_TOKENS, temperature=temperature, seed=3)
    trajectories = sample_trajectories(backend, codec, sampling, window)
    assert [len(t.segments) for t in trajectories] == [1 if window is None else 3] * 3
    error, trained = rescoring_error(model, codec, trajectories, temperature)
    assert trained > 3 * 3  # several tokens per turn, not one
    assert error < 1e-4


def test_rescoring_matches_under_a_checkpoints_own_sampling_defaults(model, codec, monkeypatch):
    """Qwen2.5-VL-Instruct ships a generation_config with top_k=1, top_p=0.001,
    temperature=0.1 and repetition_penalty=1.05: none of them may leak into RL sampling."""
    qwen_defaults = GenerationConfig(**{**model.generation_config.to_dict(), "do_sample": True,
                                        "top_k": 1, "top_p": 0.001, "temperature": 0.1,
                                        "repetition_penalty": 1.05})
    monkeypatch.setattr(model, "generation_config", qwen_defaults)
    backend = HFBackend(model, codec)
    sampling = SamplingParams(max_new_tokens=MAX_NEW_TOKENS, temperature=1.0, seed=5)
    trajectories = sample_trajectories(backend, codec, sampling, window=None, turns=2)
    error, _ = rescoring_error(model, codec, trajectories, temperature=1.0)
    assert error < 1e-4


@pytest.fixture(scope="module")
def vision_loving_model(model, codec) -> Any:
    """The tiny model with a +50 logit bias on every vision token, so that unsuppressed it
    would write nothing else."""
    biased = copy.deepcopy(model)
    head = biased.lm_head
    new_head = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    with torch.no_grad():
        new_head.weight.copy_(head.weight)
        new_head.bias.zero_()
        new_head.bias[codec.suppressed_ids] = 50.0
    biased.lm_head = new_head
    return biased


@pytest.mark.parametrize("temperature", [1.0, 0.0])
def test_vision_tokens_are_never_generated(vision_loving_model, codec, temperature):
    trajectory = TrajectoryTokens(codec, "system")
    trajectory.add_observation(*observation(0, 0))
    batch = collate_segments(trajectory.segments, codec)
    with torch.no_grad():
        logits = vision_loving_model(**{k: batch[k] for k in (
            "input_ids", "attention_mask", "pixel_values", "image_grid_thw",
            "mm_token_type_ids")}).logits
    assert int(logits[0, -1].argmax()) in codec.suppressed_ids  # what it would write
    backend = HFBackend(vision_loving_model, codec)
    sampling = SamplingParams(max_new_tokens=8, temperature=temperature, seed=0)
    generations = backend.generate([trajectory.generation_input()] * 2, sampling)
    for generation in generations:
        assert len(generation.ids) == 8
        assert not set(generation.ids) & set(codec.suppressed_ids)
        assert all(lp > float("-inf") for lp in generation.logprobs)


def test_suppressed_tokens_are_removed_from_the_rescored_distribution(vision_loving_model,
                                                                      codec):
    backend = HFBackend(vision_loving_model, codec)
    sampling = SamplingParams(max_new_tokens=6, temperature=1.0, seed=1)
    trajectories = sample_trajectories(backend, codec, sampling, window=None, rows=2, turns=2)
    error, _ = rescoring_error(vision_loving_model, codec, trajectories, temperature=1.0)
    assert error < 1e-4


def test_batched_greedy_generation_equals_one_by_one(model, codec):
    backend = HFBackend(model, codec)
    greedy = SamplingParams(max_new_tokens=MAX_NEW_TOKENS, temperature=0.0)
    prompts = []
    for row in range(3):
        trajectory = TrajectoryTokens(codec, "system " * (1 + 3 * row))
        trajectory.add_observation(*observation(0, row))
        prompts.append(trajectory.generation_input())
    batched = backend.generate(prompts, greedy)
    for prompt, together in zip(prompts, batched, strict=True):
        alone = backend.generate([prompt], greedy)[0]
        assert alone.ids == together.ids
        assert alone.text == together.text
        assert alone.logprobs == pytest.approx(together.logprobs, abs=1e-4)


def printable_tokens(codec: Any, ids: list[int]) -> list[str]:
    return [codec.tokenizer.decode([i]) for i in ids]


def test_a_turn_ends_with_the_token_that_completes_a_stop_string(model, codec):
    """Row 0 stops at a stop string, row 1 runs on: row 0 gets exactly its ids up to the
    stop, none of the padding generate adds after it. The stop string ends inside a token
    (an "overhang", as `</answer>.` when `>.` is one token): that token still ends the turn."""
    backend = HFBackend(model, codec)
    prompts = []
    for row in range(2):
        trajectory = TrajectoryTokens(codec, "system")
        trajectory.add_observation(*observation(0, row))
        prompts.append(trajectory.generation_input())
    free = backend.generate(prompts, SamplingParams(max_new_tokens=MAX_NEW_TOKENS,
                                                    temperature=0.0, stop=()))
    pieces = printable_tokens(codec, free[0].ids)
    # a multi-character ASCII token k >= 2 whose first character closes the stop string
    k = next(i for i, p in enumerate(pieces) if i >= 2 and len(p) >= 2 and p.isascii()
             and p.isprintable() and p.strip())
    stop = "".join(pieces[k - 2:k]) + pieces[k][0]
    assert stop not in "".join(pieces[:k]) and stop not in free[1].text
    stopped = backend.generate(prompts, SamplingParams(max_new_tokens=MAX_NEW_TOKENS,
                                                       temperature=0.0, stop=(stop,)))
    assert stopped[0].ids == free[0].ids[:k + 1]
    assert stopped[0].logprobs == pytest.approx(free[0].logprobs[:k + 1], abs=1e-5)
    assert stop in stopped[0].text
    assert stopped[1].ids == free[1].ids


def test_left_pad_batch_pads_on_the_left_and_keeps_images_in_prompt_order(codec):
    short = TrajectoryTokens(codec, "a")
    short.add_observation(f"x {IMAGE_PLACEHOLDER}", [frame(1)])
    longer = TrajectoryTokens(codec, "a much longer system prompt than the other one")
    longer.add_observation(f"y {IMAGE_PLACEHOLDER} {IMAGE_PLACEHOLDER}",
                           [frame(2), frame(3, width=84)])
    prompts = [short.generation_input(), longer.generation_input()]
    batch = left_pad_batch(prompts, codec)
    n_short, n_long = len(prompts[0][0]), len(prompts[1][0])
    assert batch["input_ids"].shape == (2, n_long)
    assert batch["input_ids"][0, n_long - n_short:].tolist() == prompts[0][0]
    assert (batch["input_ids"][0, :n_long - n_short] == codec.pad_id).all()
    assert batch["attention_mask"].sum(1).tolist() == [n_short, n_long]
    assert batch["image_grid_thw"].tolist() == [[1, 4, 4], [1, 4, 4], [1, 4, 6]]
    expected = torch.cat([im.pixel_values for _, images in prompts for im in images])
    assert torch.equal(batch["pixel_values"], expected)


def test_token_entropy_is_that_of_the_sampling_distribution(model, codec):
    trajectory = TrajectoryTokens(codec, "system")
    trajectory.add_observation(*observation(0, 1))
    batch = collate_segments(trajectory.segments, codec, rope_index=model.model.get_rope_index)
    with torch.no_grad():
        logp, entropy = token_logprobs(model, batch, 0.7, codec.suppressed_ids,
                                       with_entropy=True)
        logits = model(**{k: batch[k] for k in ("input_ids", "attention_mask", "pixel_values",
                                                "image_grid_thw", "position_ids")}).logits
    last = logits[0, -2] / 0.7
    last[codec.suppressed_ids] = float("-inf")
    p = last.softmax(-1)
    expected = -(p[p > 0] * p[p > 0].log()).sum()
    assert entropy[0, -1].item() == pytest.approx(expected.item(), rel=1e-4)
    assert logp[0, -1].item() == pytest.approx(p[batch["input_ids"][0, -1]].log().item(),
                                               abs=1e-5)
    assert logp[0, 0].item() == entropy[0, 0].item() == 0.0


def test_no_prompts_generate_nothing(model, codec):
    assert HFBackend(model, codec).generate([], SamplingParams()) == []


def test_a_seeded_call_repeats_its_draws_and_leaves_the_callers_rng_alone(model, codec):
    backend = HFBackend(model, codec)
    trajectory = TrajectoryTokens(codec, "system")
    trajectory.add_observation(*observation(0, 0))
    prompts = [trajectory.generation_input()] * 4
    seeded = SamplingParams(max_new_tokens=8, temperature=1.0, seed=11)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    first = [g.ids for g in backend.generate(prompts, seeded)]
    assert torch.equal(torch.get_rng_state(), state)  # the trainer's own seeding survives
    assert [g.ids for g in backend.generate(prompts, seeded)] == first
    assert len({tuple(ids) for ids in first}) > 1  # the rows of one call still differ
    unseeded = SamplingParams(max_new_tokens=8, temperature=1.0)
    backend.generate(prompts, unseeded)
    assert not torch.equal(torch.get_rng_state(), state)  # unseeded draws from the caller's
