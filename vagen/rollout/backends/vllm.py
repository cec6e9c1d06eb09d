"""vLLM backend: the offline `vllm.LLM` engine sampling from token ids + frames (GPU profile,
`bash install.sh --gpu`; vllm is imported only when an engine is built).

What keeps its log-probs equal to what training re-scores (`hf.token_logprobs`):
- the prompt is our ids, never re-rendered: each run of image tokens is collapsed to one
  `<|image_pad|>` that vLLM expands again from the frame (as verl does), and the expanded
  prompt vLLM reports back must equal our ids, else the request fails loudly;
- log-probs are the engine's *processed* ones (after temperature and the vision-token ban),
  the checkpoint's own sampling defaults are ignored (`generation_config="vllm"`);
- vision tokens are banned as `bad_words` (exact -inf), as `HFBackend` suppresses them;
- each prompt gets its own seed (`seed + i`): GRPO's copies of one prompt must differ."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vagen.rollout.backends.base import Generation, PromptInput, SamplingParams
from vagen.rollout.tokens import ChatCodec

INSTALL_HINT = "vLLM is not installed; install the GPU profile with `bash install.sh --gpu`"


def import_vllm() -> Any:
    """The vllm module, or an ImportError saying how to install it."""
    try:
        import vllm
    except ImportError as err:
        raise ImportError(f"{INSTALL_HINT} ({err})") from err
    return vllm


@dataclass
class VLLMConfig:
    """Engine settings for `vllm.LLM` (one GPU)."""

    gpu_memory_utilization: float = field(default=0.5, metadata={
        "help": "share of GPU memory vLLM may take (leave room for training)"})
    max_model_len: int = field(default=16384, metadata={
        "help": "longest prompt + response in tokens"})
    max_images_per_prompt: int = field(default=64, metadata={
        "help": "most frames one prompt may carry (vLLM's limit_mm_per_prompt)"})
    dtype: str = field(default="bfloat16", metadata={"help": "weights dtype"})
    enable_prefix_caching: bool = field(default=True, metadata={
        "help": "reuse the KV cache of shared prefixes (later turns extend earlier ones)"})
    enforce_eager: bool = field(default=False, metadata={
        "help": "skip CUDA graphs (faster start, slower decoding)"})
    seed: int = field(default=0, metadata={"help": "engine seed"})

    def __post_init__(self) -> None:
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(f"vllm.gpu_memory_utilization must be in (0, 1], got "
                             f"{self.gpu_memory_utilization}")
        for key in ("max_model_len", "max_images_per_prompt"):
            if getattr(self, key) < 1:
                raise ValueError(f"vllm.{key} must be >= 1, got {getattr(self, key)}")


class VLLMBackend:
    """Generates with `vllm.LLM` from a local checkpoint folder `model`.

    `engine` and `sampling_class` default to `vllm.LLM(model, ...)` and `vllm.SamplingParams`;
    pass others to share an engine (or, in tests without vLLM, stand-ins)."""

    def __init__(self, model: str | Path, codec: ChatCodec, config: VLLMConfig | None = None,
                 engine: Any | None = None,
                 sampling_class: Callable[..., Any] | None = None) -> None:
        self.codec = codec
        self.config = config or VLLMConfig()
        if engine is None or sampling_class is None:
            vllm = import_vllm()
            engine = engine if engine is not None else build_engine(vllm, model, self.config)
            sampling_class = sampling_class or vllm.SamplingParams
        self.engine = engine
        self.sampling_class = sampling_class
        self.banned_words = codec.tokenizer.convert_ids_to_tokens(codec.suppressed_ids)

    def generate(self, prompts: list[PromptInput], sampling: SamplingParams) -> list[Generation]:
        if not prompts:
            return []
        requests = [engine_prompt(prompt, self.codec) for prompt in prompts]
        params = [self.sampling_class(**self.sampling_kwargs(sampling, i))
                  for i in range(len(prompts))]
        outputs = self.engine.generate(requests, params, use_tqdm=False)
        if len(outputs) != len(prompts):
            raise RuntimeError(f"vLLM answered {len(outputs)} of {len(prompts)} prompts")
        return [generation_of(output, ids) for output, (ids, _) in
                zip(outputs, prompts, strict=True)]

    def sampling_kwargs(self, sampling: SamplingParams, index: int) -> dict[str, Any]:
        """`vllm.SamplingParams` fields for prompt `index` of a batch."""
        return {
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_new_tokens,
            "seed": None if sampling.seed is None else sampling.seed + index,
            "stop": list(sampling.stop),
            # a policy may close its turn with <|im_end|> whatever the tokenizer's eos is
            "stop_token_ids": [self.codec.im_end_id],
            # the env must see the closing tag; the text must say what the ids say
            "include_stop_str_in_output": True,
            "skip_special_tokens": False,
            "spaces_between_special_tokens": False,
            "logprobs": 0,  # just the sampled token's
            "repetition_penalty": 1.0,
            "bad_words": list(self.banned_words),
        }


def build_engine(vllm: Any, model: str | Path, config: VLLMConfig) -> Any:
    """`vllm.LLM` on the checkpoint folder, returning processed log-probs."""
    return vllm.LLM(
        model=str(model), tokenizer=str(model), dtype=config.dtype,
        gpu_memory_utilization=config.gpu_memory_utilization,
        max_model_len=config.max_model_len, enforce_eager=config.enforce_eager,
        enable_prefix_caching=config.enable_prefix_caching, seed=config.seed,
        limit_mm_per_prompt={"image": config.max_images_per_prompt, "video": 0},
        logprobs_mode="processed_logprobs", generation_config="vllm")


def engine_prompt(prompt: PromptInput, codec: ChatCodec) -> dict[str, Any]:
    """A `vllm.inputs.TokensPrompt`: our ids with each image-token run collapsed to one token,
    and the frames as PIL images in the order of their runs."""
    from PIL import Image

    ids, images = prompt
    collapsed = [t for i, t in enumerate(ids)
                 if t != codec.image_token_id or i == 0 or ids[i - 1] != codec.image_token_id]
    runs = collapsed.count(codec.image_token_id)
    if runs != len(images):
        raise ValueError(f"prompt has {runs} image-token runs but {len(images)} images")
    request: dict[str, Any] = {"prompt_token_ids": collapsed}
    if images:
        if any(image.frame is None for image in images):
            raise ValueError("an image has no frame; vLLM needs the frames themselves: build "
                             "images with ChatCodec.process_images")
        request["multi_modal_data"] = {"image": [Image.fromarray(im.frame) for im in images]}
    return request


def generation_of(output: Any, prompt_ids: list[int]) -> Generation:
    """A `vllm.RequestOutput` -> `Generation`, after checking vLLM saw exactly our prompt."""
    seen = list(output.prompt_token_ids or [])
    if seen != list(prompt_ids):
        raise RuntimeError(
            f"vLLM expanded the prompt to {len(seen)} tokens, ours has {len(prompt_ids)}: its "
            "image processor resizes frames differently from the codec's; load both from the "
            "same checkpoint folder (its preprocessor_config.json)")
    completion = output.outputs[0]
    ids = list(completion.token_ids)
    if completion.logprobs is None:
        raise RuntimeError("vLLM returned no log-probs; request them with logprobs=0")
    logprobs = [float(step[token].logprob)
                for step, token in zip(completion.logprobs, ids, strict=True)]
    return Generation(ids, logprobs, completion.text)
