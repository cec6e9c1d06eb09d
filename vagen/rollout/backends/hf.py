"""transformers backend: batched `generate` on CPU or one GPU, and the forward pass that
re-scores sampled tokens for training (one function for both, so they agree)."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

from vagen.rollout.backends.base import Generation, PromptInput, SamplingParams
from vagen.rollout.tokens import ChatCodec, mm_token_type_ids, stack_images
from vagen.rollout.vision_features import VisionFeatures


class HFBackend:
    """Generates with a `*ForConditionalGeneration` Qwen-VL model from a local path; with
    `vision`, each frame's vision features are computed once (`VisionFeatures`)."""

    def __init__(self, model: Any, codec: ChatCodec, vision: VisionFeatures | None = None
                 ) -> None:
        self.model = model
        self.codec = codec
        self.vision = vision
        tokenizer = codec.tokenizer
        self.eos_ids = {codec.im_end_id}
        if tokenizer.eos_token_id is not None:
            self.eos_ids.add(int(tokenizer.eos_token_id))

    @torch.no_grad()
    def generate(self, prompts: list[PromptInput], sampling: SamplingParams) -> list[Generation]:
        if not prompts:
            return []
        device = next(self.model.parameters()).device
        inputs = left_pad_batch(prompts, self.codec)
        inputs = {k: v.to(device) for k, v in inputs.items()}
        keys = inputs.pop("image_keys", None)
        greedy = sampling.temperature == 0
        # a seeded call draws from its own generator state: the caller's RNG is untouched
        cuda = [device] if device.type == "cuda" else []
        with (torch.random.fork_rng(devices=cuda, enabled=sampling.seed is not None),
              serving(self.vision, self.model, keys)):
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed)
            out = self.model.generate(
                **inputs,
                max_new_tokens=sampling.max_new_tokens,
                do_sample=not greedy,
                temperature=None if greedy else sampling.temperature,
                top_p=None if greedy else sampling.top_p,
                top_k=None,
                # a checkpoint's own sampling defaults (Qwen2.5-VL-Instruct: 1.05) must not leak in
                repetition_penalty=1.0,
                suppress_tokens=self.codec.suppressed_ids,
                eos_token_id=sorted(self.eos_ids),
                pad_token_id=self.codec.pad_id,
                stop_strings=list(sampling.stop) or None,
                tokenizer=self.codec.tokenizer,
                return_dict_in_generate=True,
                output_scores=True,
            )
        prompt_len = inputs["input_ids"].shape[1]
        new_ids = out.sequences[:, prompt_len:].cpu()
        logprobs = torch.stack(out.scores, dim=1).float().log_softmax(-1).cpu()
        picked = logprobs.gather(-1, new_ids.unsqueeze(-1)).squeeze(-1)
        results = []
        for row in range(len(prompts)):
            ids = new_ids[row].tolist()
            n = self._turn_length(ids, sampling.stop)
            results.append(Generation(ids[:n], picked[row, :n].tolist(),
                                      self.codec.tokenizer.decode(ids[:n])))
        return results

    def _turn_length(self, ids: list[int], stops: tuple[str, ...]) -> int:
        """Tokens up to and including the first eos or stop string (the rest is padding)."""
        for i, token in enumerate(ids):
            if token in self.eos_ids:
                return i + 1
            piece = self.codec.tokenizer.decode([token])
            if any(stop[-1] in piece for stop in stops):
                text = self.codec.tokenizer.decode(ids[: i + 1])
                # `in`, not `endswith`: generate also stops on a token that runs past the stop
                if any(stop in text for stop in stops):
                    return i + 1
        return len(ids)


def left_pad_batch(prompts: list[PromptInput], codec: ChatCodec) -> dict[str, torch.Tensor]:
    """Left-padded `input_ids, attention_mask, mm_token_type_ids` + stacked images."""
    length = max(len(ids) for ids, _ in prompts)
    input_ids = torch.full((len(prompts), length), codec.pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), length), dtype=torch.long)
    for row, (ids, _) in enumerate(prompts):
        input_ids[row, length - len(ids):] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, length - len(ids):] = 1
    batch = {"input_ids": input_ids, "attention_mask": attention_mask,
             "mm_token_type_ids": mm_token_type_ids(input_ids, codec.image_token_id)}
    batch.update(stack_images([image for _, images in prompts for image in images]))
    return batch


MODEL_INPUTS = ("input_ids", "attention_mask", "pixel_values", "image_grid_thw", "position_ids",
                "mm_token_type_ids")


def serving(vision: VisionFeatures | None, model: Any,
            image_keys: torch.Tensor | None) -> AbstractContextManager[None]:
    """`vision.serving(model, image_keys)`, or nothing when there is no feature cache."""
    return nullcontext() if vision is None else vision.serving(model, image_keys)


def policy_logits(model: Any, batch: dict[str, torch.Tensor], temperature: float = 1.0,
                  suppressed_ids: list[int] = (), output_hidden_states: bool = False,
                  vision: VisionFeatures | None = None) -> tuple[torch.Tensor, Any]:
    """Logits of the distribution the backend samples from (`logits / temperature`, with
    `suppressed_ids` at -inf), shifted so that position i holds the logits that predict
    token i: `(bs, L, V)`, zeros at position 0. Also returns the model output (hidden
    states for a value head). The one forward that training, SFT and re-scoring share;
    `vision` serves the batch's image features (by its `image_keys`)."""
    with serving(vision, model, batch.get("image_keys")):
        out = model(**{k: batch[k] for k in MODEL_INPUTS if k in batch},
                    output_hidden_states=output_hidden_states)
    logits = out.logits.float()
    if temperature > 0:
        logits = logits / temperature
    if suppressed_ids:
        logits[..., list(suppressed_ids)] = float("-inf")
    return torch.cat([torch.zeros_like(logits[:, :1]), logits[:, :-1]], dim=1), out


def gather_logprobs(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """`(bs, L)` log-prob of each token under aligned `(bs, L, V)` logits."""
    return logits.log_softmax(-1).gather(-1, input_ids.unsqueeze(-1)).squeeze(-1)


def token_logprobs(model: Any, batch: dict[str, torch.Tensor], temperature: float = 1.0,
                   suppressed_ids: list[int] = (), with_entropy: bool = False,
                   vision: VisionFeatures | None = None,
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-prob of each token given the ones before it, `(bs, L)` (0 at position 0), under
    the sampling distribution of `policy_logits`. With `with_entropy`, also the per-token
    entropy `(bs, L)` (0 at position 0)."""
    logits, _ = policy_logits(model, batch, temperature, suppressed_ids, vision=vision)
    logp = gather_logprobs(logits, batch["input_ids"])
    logp[:, 0] = 0.0
    entropy = None
    if with_entropy:
        logp_all = logits.log_softmax(-1)
        plogp = (logp_all.exp() * logp_all).nan_to_num(0.0)  # 0 * -inf on suppressed ids
        entropy = -plogp.sum(-1)
        entropy[:, 0] = 0.0
    return logp, entropy
