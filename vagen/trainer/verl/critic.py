"""Value models for Qwen-VL checkpoints, so verl can build a PPO critic from them.

verl builds a critic with `AutoModelForTokenClassification.from_pretrained(<actor path>)`
and, where transformers has no such class for the model type (Qwen2.5-VL, Qwen3-VL), falls
back to `trl`'s value head. Registering a token classifier here gives verl the class it
asks for: the vision-language backbone (loaded from the actor's checkpoint) plus a linear
score head (num_labels=1, new weights) over every position's last hidden state.

verl imports this module in every process that imports verl (Ray workers, the model
merger) through its `verl.plugins` entry point (pyproject.toml), so nothing relies on a
node's shell or on the order of imports.
"""

from __future__ import annotations

import importlib.util
import logging

import torch
from torch import nn
from transformers import AutoModelForTokenClassification
from transformers.conversion_mapping import (
    get_checkpoint_conversion_mapping,
    register_checkpoint_conversion_mapping,
)
from transformers.modeling_outputs import TokenClassifierOutput
from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as qwen25
from transformers.models.qwen3_vl import modeling_qwen3_vl as qwen3

logger = logging.getLogger(__name__)


class _VisionLanguageTokenClassifier:
    """Shared body of the Qwen-VL token classifiers: `model` is the backbone class's
    instance, `score` maps its last hidden states to `num_labels` values a position."""

    _backbone: type[nn.Module]

    def __init__(self, config) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = self._backbone(config)
        self.score = nn.Linear(config.text_config.hidden_size, config.num_labels)
        self.post_init()

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """verl asks for flash_attention_2 unconditionally; where flash-attn is not
        installed (CPU, a GPU image without it) the critic uses SDPA instead of failing or
        fetching a kernel from a hub."""
        if (kwargs.get("attn_implementation") == "flash_attention_2"
                and importlib.util.find_spec("flash_attn") is None):
            logger.warning("flash-attn is not installed: the critic uses sdpa attention")
            kwargs["attn_implementation"] = "sdpa"
        return super().from_pretrained(*args, **kwargs)

    def get_input_embeddings(self) -> nn.Module:
        return self.model.get_input_embeddings()

    def forward(self, input_ids: torch.Tensor | None = None, **kwargs) -> TokenClassifierOutput:
        """Values `(batch, length, num_labels)` in `logits`, as verl's value engine reads
        them. Keyword arguments (pixel values, grids, mrope positions) go to the
        backbone."""
        kwargs.pop("labels", None)
        kwargs.pop("use_cache", None)
        outputs = self.model(input_ids=input_ids, use_cache=False, **kwargs)
        logits = self.score(outputs.last_hidden_state)
        return TokenClassifierOutput(logits=logits, hidden_states=outputs.hidden_states,
                                     attentions=outputs.attentions)


class Qwen2_5_VLForTokenClassification(_VisionLanguageTokenClassifier,
                                        qwen25.Qwen2_5_VLPreTrainedModel):
    """Qwen2.5-VL with a value head: the PPO critic of the 7B recipe."""

    _backbone = qwen25.Qwen2_5_VLModel


class Qwen3VLForTokenClassification(_VisionLanguageTokenClassifier, qwen3.Qwen3VLPreTrainedModel):
    """Qwen3-VL with a value head."""

    _backbone = qwen3.Qwen3VLModel


def _register(config_cls: type, value_model: type, generation_model: type) -> None:
    """Make `value_model` the token classifier of `config_cls`, loading checkpoints with
    the weight renamings of `generation_model` (released Qwen2.5-VL checkpoints use the
    old `model.layers` / `visual` key layout)."""
    AutoModelForTokenClassification.register(config_cls, value_model, exist_ok=True)
    renamings = get_checkpoint_conversion_mapping(generation_model.__name__)
    if renamings is not None:
        register_checkpoint_conversion_mapping(value_model.__name__, renamings, overwrite=True)


_register(qwen25.Qwen2_5_VLConfig, Qwen2_5_VLForTokenClassification,
          qwen25.Qwen2_5_VLForConditionalGeneration)
_register(qwen3.Qwen3VLConfig, Qwen3VLForTokenClassification,
          qwen3.Qwen3VLForConditionalGeneration)
