"""The trainable policy: a Qwen-VL checkpoint from a local path, which parts train, LoRA,
the reference policy for KL, and PPO's value head."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vagen.rollout.tokens import ChatCodec
from vagen.rollout.vision_attention import pack_vision_attention
from vagen.rollout.vision_features import DEFAULT_KEPT_MB, VisionFeatures

# Parameter-name prefixes of the three parts Qwen-VL recipes switch on and off.
PARTS = {
    "tune_mm_vision": ("model.visual.blocks", "model.visual.patch_embed"),
    "tune_mm_mlp": ("model.visual.merger",),
    "tune_mm_llm": ("model.language_model", "lm_head"),
}
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class ModelConfig:
    """Which checkpoint and which of its parts train."""

    path: str = field(default="", metadata={
        "help": "local folder saved with save_pretrained (model, tokenizer, processor)"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda | cuda:N"})
    dtype: str = field(default="float32", metadata={"help": "float32 | bfloat16 | float16"})
    tune_mm_llm: bool = field(default=True, metadata={"help": "train the language model"})
    tune_mm_vision: bool = field(default=False, metadata={"help": "train the vision tower"})
    tune_mm_mlp: bool = field(default=True, metadata={"help": "train the vision-language merger"})
    lora_rank: int = field(default=0, metadata={"help": "LoRA rank on the language model; 0 = "
                                                        "full fine-tuning"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "trade compute for "
                                                                          "memory"})
    vision_cache_mb: int = field(default=DEFAULT_KEPT_MB, metadata={
        "help": "MB of frozen vision-tower features kept per frame and reused by every pass "
                "(rollout turns, reference, update); 0 = off. Off by itself when "
                "tune_mm_vision trains the tower or the model is not Qwen2/2.5-VL"})

    def __post_init__(self) -> None:
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"model.dtype is {self.dtype!r}; use float32, bfloat16 or float16")
        if self.lora_rank < 0:
            raise ValueError(f"model.lora_rank is {self.lora_rank}; use 0 (off) or a rank > 0")
        if self.vision_cache_mb < 0:
            raise ValueError(f"model.vision_cache_mb is {self.vision_cache_mb}; use 0 (off) "
                             "or a size in MB")
        if not (self.tune_mm_llm or self.tune_mm_vision or self.tune_mm_mlp):
            raise ValueError("model.tune_mm_llm, tune_mm_vision and tune_mm_mlp are all false: "
                             "nothing would train; switch one on")

    def resolved_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


class ValueHead(torch.nn.Module):
    """PPO's critic: a linear read-out of the policy's last hidden state, `(bs, L)`."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(hidden_size, 1)
        torch.nn.init.zeros_(self.linear.weight)
        torch.nn.init.zeros_(self.linear.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.linear(hidden.float()).squeeze(-1)


class Policy:
    """Model + processor + codec, with `reference()` giving the frozen reference policy and
    `vision` the features of the frozen vision tower (None when it trains or is off)."""

    def __init__(self, config: ModelConfig, with_value_head: bool = False,
                 with_reference: bool = False) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        path = Path(config.path)
        if not config.path or not path.is_dir():
            raise FileNotFoundError(f"model.path {config.path!r} is not a folder; give a local "
                                    "checkpoint saved with save_pretrained (the quick start "
                                    "builds one with vagen.testing.tiny_model_dir)")
        self.config = config
        self.device = config.resolved_device()
        self.processor = AutoProcessor.from_pretrained(path)
        self.codec = ChatCodec(self.processor)
        dtype = getattr(torch, config.dtype)
        model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype)
        pack_vision_attention(model)
        self._ref_model = None
        if with_reference and config.lora_rank == 0:
            self._ref_model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype)
            pack_vision_attention(self._ref_model)
            self._ref_model.to(self.device).eval().requires_grad_(False)
        self.model = self._trainable(model).to(self.device)
        if config.gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
        self.vision = None
        if (config.vision_cache_mb and not config.tune_mm_vision
                and VisionFeatures.supports(model)):
            self.vision = VisionFeatures(config.vision_cache_mb)
        self.value_head = None
        if with_value_head:
            self.value_head = ValueHead(self.text_hidden_size).to(self.device)

    @property
    def text_hidden_size(self) -> int:
        cfg = self.model.config
        return getattr(cfg, "text_config", cfg).hidden_size

    @property
    def rope_index(self) -> Any:
        """The model's own mrope position function (`get_rope_index`)."""
        inner = self.model
        while not hasattr(inner, "get_rope_index"):
            inner = inner.model if hasattr(inner, "model") else inner.base_model
        return inner.get_rope_index

    def parameters(self) -> list[torch.nn.Parameter]:
        params = [p for p in self.model.parameters() if p.requires_grad]
        if self.value_head is not None:
            params += list(self.value_head.parameters())
        return params

    def reference(self) -> AbstractContextManager[Any]:
        """Context giving the reference model: the adapter disabled under LoRA, else the
        frozen copy loaded at start."""
        if self.config.lora_rank > 0:
            return self.model.disable_adapter()
        if self._ref_model is None:
            raise RuntimeError("no reference policy was loaded (with_reference=False)")
        return nullcontext(self._ref_model)

    def save(self, folder: Path) -> None:
        """A folder that loads back like the original checkpoint (LoRA merged)."""
        import copy

        model = self.model
        if self.config.lora_rank > 0:
            model = copy.deepcopy(self.model).merge_and_unload()
        model.save_pretrained(folder)
        self.processor.save_pretrained(folder)

    def _trainable(self, model: Any) -> Any:
        for name, param in model.named_parameters():
            param.requires_grad_(any(name.startswith(prefix)
                                     for key, prefixes in PARTS.items()
                                     if getattr(self.config, key) for prefix in prefixes))
        if self.config.lora_rank == 0:
            return model
        from peft import LoraConfig, get_peft_model

        # Switched-on parts outside the language model train as peft `modules_to_save`
        # copies, so that `disable_adapter()` (the reference policy) restores them too.
        lora = LoraConfig(r=self.config.lora_rank, lora_alpha=self.config.lora_alpha,
                          target_modules=r".*language_model.*\.(" + "|".join(LORA_TARGETS) + ")",
                          modules_to_save=self._modules_beside_adapter(model) or None)
        return get_peft_model(model, lora)

    def _modules_beside_adapter(self, model: Any) -> list[str]:
        """Names of the switched-on vision/merger modules (a block list as its blocks: peft
        wraps modules that are called, and a ModuleList never is)."""
        names = []
        for key, prefixes in PARTS.items():
            if key == "tune_mm_llm" or not getattr(self.config, key):
                continue
            for prefix in prefixes:
                module = model.get_submodule(prefix)
                if isinstance(module, torch.nn.ModuleList):
                    names += [f"{prefix}.{i}" for i in range(len(module))]
                else:
                    names.append(prefix)
        return names
