"""Trajectory -> token ids and training tensors.

A trajectory grows by appending ids: the chat of each new observation is rendered once (as
the Qwen-VL chat template would render it) and the policy's sampled ids are kept as they
were generated, never re-tokenised. That is what makes re-scoring a trajectory reproduce
its sampling log-probs.

When the history window drops the images of old turns, the context is no longer a prefix of
what came before, so the trajectory starts a new *segment*: the whole chat re-rendered with
the old images replaced by a note. Each segment is one training row; its earlier responses
are context (loss mask 0), its own responses are trained on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from vagen.env.base import IMAGE_PLACEHOLDER
from vagen.rollout.images import ImageProcessing, ProcessedImage

OMITTED_FRAME = "[frame omitted]"
IGNORE_TURN = -1


@dataclass
class Message:
    """A chat message: `text` holds one `<image>` per entry of `images`. Assistant messages
    keep the sampled `ids` so that re-rendering never re-tokenises them."""

    role: str
    text: str
    images: list[ProcessedImage] = field(default_factory=list)
    ids: list[int] | None = None


class ChatCodec:
    """Renders messages to ids exactly as the Qwen-VL chat template does, one message at a
    time, so that a trajectory can grow by appending."""

    def __init__(self, processor: Any) -> None:
        self.tokenizer = processor.tokenizer
        self.image_processor = processor.image_processor
        self.images = ImageProcessing(self.image_processor)
        self.merge_size = int(self.image_processor.merge_size)
        self.image_token = getattr(processor, "image_token", "<|image_pad|>")
        self.image_token_id = self._token_id(self.image_token)
        self.im_end_id = self._token_id("<|im_end|>")
        # The policy must never write vision tokens: each needs an image behind it.
        self.suppressed_ids = sorted({self._token_id(t) for t in (
            self.image_token, "<|video_pad|>", "<|vision_start|>", "<|vision_end|>",
            "<|vision_pad|>")})
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.eos_token_id

    def _token_id(self, token: str) -> int:
        token_id = self.tokenizer.convert_tokens_to_ids(token)
        if token_id is None or token_id == self.tokenizer.unk_token_id:
            raise ValueError(f"tokenizer has no token {token!r}; is this a Qwen-VL tokenizer?")
        return int(token_id)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def process_images(self, frames: list[np.ndarray]) -> list[ProcessedImage]:
        """A turn's frames as the processor's output, one entry per image (kept per image so
        segments can drop some); a frame processed before is not processed again."""
        return self.images(frames) if frames else []

    def message_ids(self, message: Message, omit_images: bool = False) -> list[int]:
        """`<|im_start|>role\\n content <|im_end|>\\n` with each `<image>` expanded to its
        vision tokens (or replaced by a note when `omit_images`)."""
        if message.ids is not None:
            return self.encode(f"<|im_start|>{message.role}\n") + message.ids + self.turn_end(
                message.ids)
        pieces = message.text.split(IMAGE_PLACEHOLDER)
        if len(pieces) - 1 != len(message.images):
            raise ValueError(f"{message.role} message has {len(pieces) - 1} {IMAGE_PLACEHOLDER} "
                             f"placeholders but {len(message.images)} images")
        parts = [pieces[0]]
        for image, piece in zip(message.images, pieces[1:], strict=True):
            vision = f"<|vision_start|>{self.image_token * image.num_tokens}<|vision_end|>"
            parts += [OMITTED_FRAME if omit_images else vision, piece]
        return self.encode(f"<|im_start|>{message.role}\n{''.join(parts)}<|im_end|>\n")

    def generation_prompt(self) -> list[int]:
        return self.encode("<|im_start|>assistant\n")

    def turn_end(self, response_ids: list[int]) -> list[int]:
        """What closes an assistant turn after its sampled ids (the policy may have emitted
        `<|im_end|>` itself, or stopped at an action tag)."""
        if response_ids and response_ids[-1] == self.im_end_id:
            return self.encode("\n")
        return [self.im_end_id, *self.encode("\n")]


@dataclass
class Segment:
    """One training row of a trajectory: ids with per-token loss mask, turn id, sampling
    log-prob and reward, plus the images in the order of their vision tokens."""

    input_ids: list[int] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)
    turn_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    images: list[ProcessedImage] = field(default_factory=list)
    _positions: tuple[int, torch.Tensor] | None = field(default=None, repr=False, compare=False)

    def position_ids(self, codec: ChatCodec, rope_index: Any) -> torch.Tensor:
        """The row's mrope positions `(3, len)`, computed once for its current length (SFT
        replays each segment many times; a grown segment is computed again)."""
        if self._positions is None or self._positions[0] != len(self.input_ids):
            ids = torch.tensor([self.input_ids])
            positions, _ = rope_index(
                ids, mm_token_type_ids=mm_token_type_ids(ids, codec.image_token_id),
                image_grid_thw=(torch.stack([im.grid_thw for im in self.images])
                                if self.images else None),
                attention_mask=torch.ones_like(ids))
            self._positions = (len(self.input_ids), positions[:, 0])
        return self._positions[1]

    def extend_context(self, ids: list[int], images: list[ProcessedImage] = ()) -> None:
        n = len(ids)
        self.input_ids += ids
        self.loss_mask += [0] * n
        self.turn_ids += [IGNORE_TURN] * n
        self.logprobs += [0.0] * n
        self.rewards += [0.0] * n
        self.images += list(images)

    def extend_response(self, ids: list[int], logprobs: list[float], turn: int) -> None:
        if len(ids) != len(logprobs):
            raise ValueError(f"{len(ids)} response ids but {len(logprobs)} log-probs")
        self.input_ids += ids
        self.loss_mask += [1] * len(ids)
        self.turn_ids += [turn] * len(ids)
        self.logprobs += list(logprobs)
        self.rewards += [0.0] * len(ids)


class TrajectoryTokens:
    """The ids of one trajectory as it is played, split into segments by the history window.

    `window` is how many image-bearing user turns keep their images (None: all)."""

    def __init__(self, codec: ChatCodec, system_prompt: str, window: int | None = None) -> None:
        if window is not None and window < 1:
            raise ValueError(f"window must be >= 1 (or None for no limit), got {window}")
        self.codec = codec
        self.window = window
        self.messages: list[Message] = [Message("system", system_prompt)]
        self.segments: list[Segment] = []
        self._turn_of_message: dict[int, int] = {}

    @property
    def current(self) -> Segment:
        return self.segments[-1]

    def add_observation(self, text: str, frames: list[np.ndarray]) -> None:
        """Append a user turn; starts a new segment when the window drops old images."""
        message = Message("user", text, self.codec.process_images(frames))
        self.messages.append(message)
        kept = self._messages_with_images()
        if not self.segments or (self.window is not None and len(kept) > self.window):
            self._start_segment()
        else:
            closing = self.current
            closing.extend_context(self.codec.message_ids(message), message.images)
        self.current.extend_context(self.codec.generation_prompt())

    def add_response(self, ids: list[int], logprobs: list[float], turn: int,
                     trained: bool = True) -> None:
        """Append the policy's sampled ids (trained on, or context when not `trained`) and
        close the assistant turn."""
        self.messages.append(Message("assistant", "", ids=list(ids)))
        self._turn_of_message[len(self.messages) - 1] = turn
        if trained:
            self.current.extend_response(ids, logprobs, turn)
        else:
            self.current.extend_context(ids)
        self.current.extend_context(self.codec.turn_end(ids))

    def set_turn_reward(self, turn: int, reward: float) -> None:
        """Put a turn's reward on its last policy token."""
        for segment in self.segments:
            positions = [i for i, t in enumerate(segment.turn_ids) if t == turn]
            if positions:
                segment.rewards[positions[-1]] = float(reward)
                return
        raise KeyError(f"turn {turn} has no response tokens")

    def generation_input(self) -> tuple[list[int], list[ProcessedImage]]:
        """What the policy sees now: the current segment's ids and images."""
        return self.current.input_ids, self.current.images

    def _messages_with_images(self) -> list[int]:
        return [i for i, m in enumerate(self.messages) if m.role == "user" and m.images]

    def _start_segment(self) -> None:
        with_images = self._messages_with_images()
        keep = set(with_images if self.window is None else with_images[-self.window:])
        segment = Segment()
        for i, message in enumerate(self.messages):
            omit = i not in keep
            ids = self.codec.message_ids(message, omit_images=omit)
            if message.role == "assistant":
                # Earlier responses are context here: they were trained in their own segment.
                segment.extend_context(ids)
            else:
                segment.extend_context(ids, [] if omit else message.images)
        # The closing generation prompt is added by the caller; drop nothing else.
        self.segments.append(segment)


def mm_token_type_ids(input_ids: torch.Tensor, image_token_id: int) -> torch.Tensor:
    """Qwen-VL's modality ids: 1 on image tokens, 0 on text."""
    return (input_ids == image_token_id).to(torch.int32)


def collate_segments(segments: list[Segment], codec: ChatCodec,
                     rope_index: Any | None = None) -> dict[str, torch.Tensor]:
    """Right-padded training batch of segments.

    Returns `input_ids, attention_mask, loss_mask, turn_ids, old_logprobs, token_rewards`
    (each `(bs, L)`), `pixel_values (n_patches, patch_dim)`, `image_grid_thw (n_images, 3)`,
    `image_keys (n_images,)`, and, when `rope_index` (the model's `get_rope_index`) is
    given, mrope `position_ids` `(3, bs, L)`."""
    if not segments:
        raise ValueError("no segments to collate")
    length = max(len(s.input_ids) for s in segments)

    def pad(values: list, fill: float, dtype: torch.dtype) -> torch.Tensor:
        return torch.tensor(values + [fill] * (length - len(values)), dtype=dtype)

    batch = {
        "input_ids": torch.stack([pad(s.input_ids, codec.pad_id, torch.long) for s in segments]),
        "attention_mask": torch.stack([pad([1] * len(s.input_ids), 0, torch.long)
                                       for s in segments]),
        "loss_mask": torch.stack([pad(s.loss_mask, 0, torch.float32) for s in segments]),
        "turn_ids": torch.stack([pad(s.turn_ids, IGNORE_TURN, torch.long) for s in segments]),
        "old_logprobs": torch.stack([pad(s.logprobs, 0.0, torch.float32) for s in segments]),
        "token_rewards": torch.stack([pad(s.rewards, 0.0, torch.float32) for s in segments]),
    }
    batch.update(stack_images([image for s in segments for image in s.images]))
    batch["mm_token_type_ids"] = mm_token_type_ids(batch["input_ids"], codec.image_token_id)
    if rope_index is not None and "image_grid_thw" in batch:
        # Row by row equals the model's batched call (padding gets position 0), and each
        # segment keeps its rows' positions for the next time it is collated.
        positions = [s.position_ids(codec, rope_index) for s in segments]
        batch["position_ids"] = torch.stack(
            [torch.nn.functional.pad(p, (0, length - p.shape[1])) for p in positions], dim=1)
    return batch


def stack_images(images: list[ProcessedImage]) -> dict[str, torch.Tensor]:
    """Concatenate processed images in token order (empty dict when there are none), with
    each image's content key (`image_keys`, for `VisionFeatures`)."""
    if not images:
        return {}
    return {"pixel_values": torch.cat([im.pixel_values for im in images]),
            "image_grid_thw": torch.stack([im.grid_thw for im in images]),
            "image_keys": torch.tensor([im.key for im in images], dtype=torch.long)}
