"""The vLLM backend's request and response mapping. vLLM needs a GPU and is not installed in
the CPU profile, so these tests drive `VLLMBackend` with a stand-in engine that does what
`vllm.LLM.generate` does with a request (expand each image token by the image processor's
count for its frame, answer with token ids, per-token log-prob dicts and text); the real
engine runs on the GPU machine (`bash install.sh --gpu`)."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from tests.rollout.conftest import frame
from vagen.env.base import IMAGE_PLACEHOLDER
from vagen.rollout.backends.base import SamplingParams
from vagen.rollout.backends.vllm import VLLMBackend, VLLMConfig
from vagen.rollout.manager import RolloutConfig, RolloutManager
from vagen.rollout.tokens import TrajectoryTokens

REPLY = "<think>it turned</think><answer>B</answer>"


class StandInEngine:
    """Records requests; expands image tokens with `image_processor` (vLLM runs the
    checkpoint's own) and answers every prompt with `reply_ids`."""

    def __init__(self, codec: Any, reply_ids: list[int], image_processor: Any = None) -> None:
        self.codec = codec
        self.reply_ids = reply_ids
        self.image_processor = image_processor or codec.image_processor
        self.requests: list[dict] = []
        self.params: list[Any] = []

    def generate(self, prompts: list[dict], sampling_params: list[Any], use_tqdm: bool = True):
        self.requests += prompts
        self.params += sampling_params
        return [self.answer(prompt) for prompt in prompts]

    def answer(self, prompt: dict) -> SimpleNamespace:
        frames = iter(prompt.get("multi_modal_data", {}).get("image", []))
        expanded = []
        for token in prompt["prompt_token_ids"]:
            count = 1
            if token == self.codec.image_token_id:
                grid = self.image_processor(images=[np.array(next(frames))],
                                            return_tensors="pt")["image_grid_thw"][0]
                count = int(grid.prod()) // self.codec.merge_size ** 2
            expanded += [token] * count
        other = self.codec.pad_id
        logprobs = [{token: SimpleNamespace(logprob=-0.25 * (j + 1)),
                     other: SimpleNamespace(logprob=-9.0)}
                    for j, token in enumerate(self.reply_ids)]
        completion = SimpleNamespace(token_ids=tuple(self.reply_ids), logprobs=logprobs,
                                     text=self.codec.tokenizer.decode(self.reply_ids))
        return SimpleNamespace(prompt_token_ids=expanded, outputs=[completion])


def prompt_with_frames(codec: Any, frames: list[np.ndarray]):
    trajectory = TrajectoryTokens(codec, "system")
    trajectory.add_observation(" ".join([f"frame {IMAGE_PLACEHOLDER}"] * len(frames)), frames)
    return trajectory.generation_input()


def backend_with(codec: Any, **engine_kwargs: Any) -> tuple[VLLMBackend, StandInEngine]:
    engine = StandInEngine(codec, codec.encode(REPLY) + [codec.im_end_id], **engine_kwargs)
    return VLLMBackend("unused", codec, engine=engine, sampling_class=dict), engine


def test_images_go_to_the_engine_in_token_order_with_one_token_per_image(codec):
    backend, engine = backend_with(codec)
    frames = [frame(10), frame(200, width=84), frame(90, height=84)]
    ids, images = prompt_with_frames(codec, frames)
    backend.generate([(ids, images)], SamplingParams())
    (request,) = engine.requests
    sent = request["multi_modal_data"]["image"]
    assert [np.asarray(image).tolist() for image in sent] == [f.tolist() for f in frames]
    collapsed = request["prompt_token_ids"]
    assert collapsed.count(codec.image_token_id) == 3
    vision_start = codec.tokenizer.convert_tokens_to_ids("<|vision_start|>")
    assert collapsed.count(vision_start) == 3
    # everything but the image-token runs is our ids, in order
    assert [t for t in collapsed if t != codec.image_token_id] == [
        t for t in ids if t != codec.image_token_id]


def test_returned_ids_logprobs_and_text_become_generations(codec):
    backend, _ = backend_with(codec)
    prompts = [prompt_with_frames(codec, [frame(10)]),
               prompt_with_frames(codec, [frame(20), frame(30)])]
    generations = backend.generate(prompts, SamplingParams())
    reply = codec.encode(REPLY) + [codec.im_end_id]
    for generation in generations:
        assert generation.ids == reply
        assert generation.logprobs == [-0.25 * (j + 1) for j in range(len(reply))]
        assert generation.text == REPLY + "<|im_end|>"
    assert backend.generate([], SamplingParams()) == []


def test_sampling_params_map_to_vllm_fields_with_a_seed_per_prompt(codec):
    backend, engine = backend_with(codec)
    prompts = [prompt_with_frames(codec, [frame(i)]) for i in range(3)]
    sampling = SamplingParams(max_new_tokens=17, temperature=0.7, top_p=0.9,
                              stop=("</answer>",), seed=5)
    backend.generate(prompts, sampling)
    assert [p["seed"] for p in engine.params] == [5, 6, 7]  # GRPO copies must differ
    first = engine.params[0]
    assert (first["temperature"], first["top_p"], first["max_tokens"]) == (0.7, 0.9, 17)
    assert first["stop"] == ["</answer>"]
    assert first["stop_token_ids"] == [codec.im_end_id]
    assert first["include_stop_str_in_output"] is True
    assert first["skip_special_tokens"] is False
    assert first["logprobs"] == 0
    assert first["repetition_penalty"] == 1.0
    assert sorted(first["bad_words"]) == sorted(
        ["<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>",
         "<|vision_pad|>"])
    assert codec.tokenizer.convert_tokens_to_ids(first["bad_words"]) == codec.suppressed_ids
    backend.generate(prompts[:2], SamplingParams(temperature=0.0))
    assert [p["seed"] for p in engine.params[3:]] == [None, None]
    assert engine.params[3]["temperature"] == 0.0


def test_an_engine_that_resizes_frames_differently_fails_loudly(codec):
    smaller = type(codec.image_processor)(
        size={"shortest_edge": 28 * 28, "longest_edge": 28 * 28}, patch_size=14,
        merge_size=2, temporal_patch_size=2)
    backend, _ = backend_with(codec, image_processor=smaller)
    with pytest.raises(RuntimeError, match="resizes frames differently"):
        backend.generate([prompt_with_frames(codec, [frame(10)])], SamplingParams())


def test_bad_prompts_and_answers_are_named(codec):
    backend, engine = backend_with(codec)
    ids, images = prompt_with_frames(codec, [frame(10), frame(20)])
    with pytest.raises(ValueError, match="2 image-token runs but 1 images"):
        backend.generate([(ids, images[:1])], SamplingParams())
    images[0].frame = None
    with pytest.raises(ValueError, match="ChatCodec.process_images"):
        backend.generate([(ids, images)], SamplingParams())
    engine.reply_ids = []
    engine.answer = lambda prompt: SimpleNamespace(
        prompt_token_ids=prompt["prompt_token_ids"],
        outputs=[SimpleNamespace(token_ids=(5,), logprobs=None, text="x")])
    with pytest.raises(RuntimeError, match="no log-probs"):
        backend.generate([prompt_with_frames(codec, [])], SamplingParams())


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_without_vllm_the_error_says_how_to_install_it(codec):
    with pytest.raises(ImportError, match=r"bash install\.sh --gpu"):
        VLLMBackend("some/checkpoint", codec)


def test_engine_config_errors_name_the_key():
    with pytest.raises(ValueError, match="vllm.gpu_memory_utilization"):
        VLLMConfig(gpu_memory_utilization=1.5)
    with pytest.raises(ValueError, match="vllm.max_images_per_prompt"):
        VLLMConfig(max_images_per_prompt=0)


def test_the_vllm_backend_plays_a_rollout_through_the_manager(codec, env_client):
    backend, engine = backend_with(codec)
    env_client.create({"v0": {"group": "qa"}, "v1": {"group": "qa"}})
    manager = RolloutManager(backend, codec, env_client, RolloutConfig(max_turns=2))
    trajectories = manager.run(["v0", "v1"], seeds=[0, 0])
    for trajectory in trajectories:
        assert len(trajectory.turns) == 1 and trajectory.terminated
        assert trajectory.turns[0].info["correct"] is True
        assert len(engine.requests[0]["multi_modal_data"]["image"]) == 3
