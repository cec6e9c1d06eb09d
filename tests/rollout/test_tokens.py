"""Trajectory -> ids and training tensors, checked against the processor's own chat template,
the vision tower's feature count and the model's own mrope positions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from tests.rollout.conftest import TOKENS_PER_FRAME, frame
from vagen.env.base import IMAGE_PLACEHOLDER
from vagen.rollout.tokens import (
    IGNORE_TURN,
    OMITTED_FRAME,
    TrajectoryTokens,
    collate_segments,
    mm_token_type_ids,
)

SYSTEM = "You look at frames and answer."
# (user text, frames, assistant reply) per turn; the second frame of turn 1 is 56x84 (6 tokens)
TURNS = [
    (f"Frame 0 at 0.5s: {IMAGE_PLACEHOLDER}\nFrame 1 at 1.5s: {IMAGE_PLACEHOLDER}\nWhat now?",
     [frame(10), frame(200, width=84)], "<think>look</think><retrieve>4,7</retrieve>"),
    (f"The frames you asked for:\nFrame 4 at 4.5s: {IMAGE_PLACEHOLDER}", [frame(90)],
     "<think>it turned</think><answer>B</answer>"),
    (f"Frame 9 at 9.5s: {IMAGE_PLACEHOLDER}", [frame(160)], "<answer>C</answer>"),
]


def template_inputs(processor: Any, turns: list[tuple[str, list, str | None]]) -> dict:
    """What `apply_chat_template` + `processor(...)` make of the same conversation."""
    messages = [{"role": "system", "content": [{"type": "text", "text": SYSTEM}]}]
    images = []
    for text, frames, reply in turns:
        content = []
        for i, piece in enumerate(text.split(IMAGE_PLACEHOLDER)):
            if i:
                content.append({"type": "image"})
            if piece:
                content.append({"type": "text", "text": piece})
        messages.append({"role": "user", "content": content})
        images += frames
        if reply is not None:
            messages.append({"role": "assistant", "content": [{"type": "text", "text": reply}]})
    text = processor.apply_chat_template(messages, tokenize=False,
                                         add_generation_prompt=turns[-1][2] is None)
    return processor(text=[text], images=images, return_tensors="pt")


def play(codec: Any, turns: list[tuple[str, list, str | None]], window: int | None = None,
         ) -> tuple[TrajectoryTokens, list[list[int]]]:
    """A trajectory of `turns` whose replies are given texts; returns it and the reply ids."""
    trajectory = TrajectoryTokens(codec, SYSTEM, window)
    replies = []
    for turn, (text, frames, reply) in enumerate(turns):
        trajectory.add_observation(text, frames)
        if reply is not None:
            ids = codec.encode(reply)
            trajectory.add_response(ids, [-0.5 - turn] * len(ids), turn)
            replies.append(ids)
    return trajectory, replies


def test_codec_renders_what_the_chat_template_and_processor_produce(processor, codec):
    turns = [*TURNS[:2], (TURNS[2][0], TURNS[2][1], None)]
    trajectory, _ = play(codec, turns)
    expected = template_inputs(processor, turns)
    ids, images = trajectory.generation_input()
    assert ids == expected["input_ids"][0].tolist()
    batch = collate_segments(trajectory.segments, codec)
    assert torch.equal(batch["pixel_values"], expected["pixel_values"])
    assert batch["image_grid_thw"].tolist() == expected["image_grid_thw"].tolist() == [
        [1, 4, 4], [1, 4, 6], [1, 4, 4], [1, 4, 4]]
    assert [image.num_tokens for image in images] == [4, 6, 4, 4]


def test_a_message_with_the_wrong_number_of_images_is_rejected(codec):
    trajectory = TrajectoryTokens(codec, SYSTEM)
    with pytest.raises(ValueError, match="2 <image> placeholders but 1 images"):
        trajectory.add_observation(f"{IMAGE_PLACEHOLDER} and {IMAGE_PLACEHOLDER}", [frame(1)])
    with pytest.raises(ValueError, match="window must be >= 1"):
        TrajectoryTokens(codec, SYSTEM, window=0)


def test_image_tokens_equal_the_features_of_the_vision_tower(model, codec):
    trajectory, _ = play(codec, TURNS)
    batch = collate_segments(trajectory.segments, codec)
    n_image_tokens = int((batch["input_ids"] == codec.image_token_id).sum())
    with torch.no_grad():
        features = model.model.get_image_features(batch["pixel_values"],
                                                  batch["image_grid_thw"]).pooler_output
    assert n_image_tokens == sum(f.shape[0] for f in features) == 4 + 6 + 4 + 4
    assert [f.shape[0] for f in features] == [im.num_tokens for im in trajectory.current.images]
    assert torch.equal(batch["mm_token_type_ids"],
                       (batch["input_ids"] == codec.image_token_id).int())


def test_loss_mask_is_one_exactly_on_the_sampled_tokens(codec):
    trajectory, replies = play(codec, TURNS[:2])
    batch = collate_segments(trajectory.segments, codec)
    mask = batch["loss_mask"][0].bool()
    assert batch["input_ids"][0][mask].tolist() == replies[0] + replies[1]
    # the template's closing <|im_end|>\n after each reply is context, not policy output
    assert int(mask.sum()) == len(replies[0]) + len(replies[1])
    assert batch["turn_ids"][0][mask].tolist() == [0] * len(replies[0]) + [1] * len(replies[1])
    assert (batch["turn_ids"][0][~mask] == IGNORE_TURN).all()
    assert batch["old_logprobs"][0][mask].tolist() == (
        [-0.5] * len(replies[0]) + [-1.5] * len(replies[1]))
    assert (batch["old_logprobs"][0][~mask] == 0).all()


def test_a_response_not_trained_on_is_context_with_the_same_ids(codec):
    trained, replies = play(codec, TURNS[:2])
    untrained = TrajectoryTokens(codec, SYSTEM)
    for turn, (text, frames, _) in enumerate(TURNS[:2]):
        untrained.add_observation(text, frames)
        untrained.add_response(replies[turn], [0.0] * len(replies[turn]), turn,
                               trained=turn == 0)
    assert untrained.current.input_ids == trained.current.input_ids
    mask = untrained.current.loss_mask
    assert sum(mask) == len(replies[0])
    assert set(untrained.current.turn_ids) == {IGNORE_TURN, 0}


def test_a_reply_that_ends_with_im_end_is_closed_by_a_newline_only(codec, processor):
    trajectory = TrajectoryTokens(codec, SYSTEM)
    text, frames, reply = TURNS[0]
    trajectory.add_observation(text, frames)
    ids = codec.encode(reply) + [codec.im_end_id]
    trajectory.add_response(ids, [0.0] * len(ids), 0)
    expected = template_inputs(processor, [TURNS[0]])["input_ids"][0].tolist()
    assert trajectory.current.input_ids == expected
    assert sum(trajectory.current.loss_mask) == len(ids)  # its <|im_end|> was sampled


def test_each_turn_reward_sits_on_its_last_policy_token(codec):
    trajectory, replies = play(codec, TURNS[:2])
    trajectory.set_turn_reward(0, 0.25)
    trajectory.set_turn_reward(1, -0.1)
    batch = collate_segments(trajectory.segments, codec)
    rewards = batch["token_rewards"][0]
    turns = batch["turn_ids"][0]
    last_of = {t: int((turns == t).nonzero().max()) for t in (0, 1)}
    assert rewards.nonzero().flatten().tolist() == [last_of[0], last_of[1]]
    assert rewards[last_of[0]].item() == 0.25
    assert rewards[last_of[1]].item() == pytest.approx(-0.1)
    with pytest.raises(KeyError, match="turn 2 has no response tokens"):
        trajectory.set_turn_reward(2, 1.0)


def test_a_window_of_one_starts_a_segment_per_turn_with_earlier_frames_omitted(codec):
    trajectory, replies = play(codec, TURNS, window=1)
    for turn in range(3):
        trajectory.set_turn_reward(turn, float(turn + 1))
    segments = trajectory.segments
    assert len(segments) == 3
    omitted = codec.encode(OMITTED_FRAME)
    frames_of_turn = [len(frames) for _, frames, _ in TURNS]
    for k, segment in enumerate(segments):
        # only this turn's frames keep their images; each earlier frame became a note
        assert [im.num_tokens for im in segment.images] == [
            im.num_tokens for im in codec.process_images(TURNS[k][1])]
        image_tokens = sum(1 for t in segment.input_ids if t == codec.image_token_id)
        assert image_tokens == sum(im.num_tokens for im in segment.images)
        assert count_runs(segment.input_ids, omitted) == sum(frames_of_turn[:k])
        # every reply so far is in the ids, but only this turn's is trained on
        for j in range(k + 1):
            assert count_runs(segment.input_ids, replies[j]) >= 1
        trained = [t for t, m in zip(segment.input_ids, segment.loss_mask, strict=True) if m]
        assert trained == replies[k]
        assert set(segment.turn_ids) == {IGNORE_TURN, k}
        assert [r for r in segment.rewards if r] == [float(k + 1)]


def test_no_window_keeps_one_segment_and_a_window_of_two_drops_the_first_turns_frames(codec):
    whole, _ = play(codec, TURNS, window=None)
    assert len(whole.segments) == 1
    assert len(whole.current.images) == 4
    two, replies = play(codec, TURNS, window=2)
    assert len(two.segments) == 2
    assert [len(s.images) for s in two.segments] == [3, 2]
    assert count_runs(two.segments[1].input_ids, codec.encode(OMITTED_FRAME)) == 2
    assert sum(two.segments[0].loss_mask) == len(replies[0]) + len(replies[1])
    assert sum(two.segments[1].loss_mask) == len(replies[2])


def test_collated_mrope_positions_equal_those_the_model_computes_itself(model, codec):
    short, _ = play(codec, TURNS[:1])
    longer, _ = play(codec, TURNS, window=None)
    batch = collate_segments([short.current, longer.current], codec,
                             rope_index=model.model.get_rope_index)
    seen = {}

    def capture(module, args, kwargs):
        seen["position_ids"] = kwargs["position_ids"]

    hook = model.model.language_model.register_forward_pre_hook(capture, with_kwargs=True)
    try:
        with torch.no_grad():
            inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "pixel_values",
                                            "image_grid_thw", "mm_token_type_ids")}
            own = model(**inputs).logits
            given = model(**inputs, position_ids=batch["position_ids"]).logits
    finally:
        hook.remove()
    assert batch["position_ids"].shape == (3, 2, batch["input_ids"].shape[1])
    attended = batch["attention_mask"].bool()
    assert torch.equal(batch["position_ids"][:, attended], seen["position_ids"][:, attended])
    assert torch.allclose(own[attended], given[attended])


def test_a_segment_computes_its_positions_once_until_it_grows(model, codec):
    trajectory, _ = play(codec, TURNS, window=None)
    segment = trajectory.current
    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return model.model.get_rope_index(*args, **kwargs)

    first = collate_segments([segment], codec, rope_index=counted)["position_ids"]
    again = collate_segments([segment], codec, rope_index=counted)["position_ids"]
    assert len(calls) == 1 and torch.equal(first, again)
    segment.extend_context(codec.encode("more"))
    grown = collate_segments([segment], codec, rope_index=counted)["position_ids"]
    assert len(calls) == 2 and grown.shape[-1] == first.shape[-1] + len(codec.encode("more"))


def test_mrope_positions_of_a_frame_follow_its_patch_grid(model, codec):
    """Hand-computed: text counts up by one in all three axes; the 2x2 merged patches of a
    56x56 frame share the time position and spread over height and width; the text after the
    frame continues one past the largest of them."""
    trajectory = TrajectoryTokens(codec, SYSTEM)
    trajectory.add_observation(f"See {IMAGE_PLACEHOLDER} now", [frame(10)])
    batch = collate_segments(trajectory.segments, codec, rope_index=model.model.get_rope_index)
    ids = batch["input_ids"][0].tolist()
    first = ids.index(codec.image_token_id)
    assert ids[first:first + TOKENS_PER_FRAME + 1].count(codec.image_token_id) == 4
    positions = batch["position_ids"][:, 0]
    assert positions[:, :first].tolist() == [list(range(first))] * 3
    block = positions[:, first:first + TOKENS_PER_FRAME] - first
    assert block.tolist() == [[0, 0, 0, 0], [0, 0, 1, 1], [0, 1, 0, 1]]
    after = first + TOKENS_PER_FRAME  # <|vision_end|>
    assert positions[:, after].tolist() == [first + 2] * 3
    assert positions[:, -1].tolist() == [first + 2 + len(ids) - after - 1] * 3


def test_collate_pads_on_the_right_with_nothing_trained_there(codec):
    short, _ = play(codec, TURNS[:1])
    longer, _ = play(codec, TURNS[:2])
    batch = collate_segments([short.current, longer.current], codec)
    n = len(short.current.input_ids)
    assert batch["attention_mask"][0].tolist() == [1] * n + [0] * (
        batch["input_ids"].shape[1] - n)
    assert (batch["input_ids"][0, n:] == codec.pad_id).all()
    assert batch["loss_mask"][0, n:].sum() == 0
    assert batch["pixel_values"].shape[0] == sum(
        im.pixel_values.shape[0] for s in (short, longer) for im in s.current.images)
    assert torch.equal(mm_token_type_ids(batch["input_ids"], codec.image_token_id),
                       batch["mm_token_type_ids"])
    with pytest.raises(ValueError, match="no segments"):
        collate_segments([], codec)


def test_text_only_segments_collate_without_images(codec):
    trajectory = TrajectoryTokens(codec, SYSTEM)
    trajectory.add_observation("No frames here.", [])
    batch = collate_segments(trajectory.segments, codec, rope_index=lambda *a, **k: 1 / 0)
    assert "pixel_values" not in batch and "position_ids" not in batch
    assert not np.any(batch["mm_token_type_ids"].numpy())


def count_runs(ids: list[int], run: list[int]) -> int:
    """How many times `run` occurs in `ids` as a contiguous sub-list."""
    n = len(run)
    return sum(1 for i in range(len(ids) - n + 1) if ids[i:i + n] == run)
