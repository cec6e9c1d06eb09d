"""A tiny random Qwen2.5-VL (about 1 M parameters), its tokenizer and processor, built in code
and saved like a real checkpoint, so tests, benchmarks and the quick start run offline on a
CPU through exactly the loading path a user takes with `Qwen/Qwen2.5-VL-7B-Instruct`:

    path = tiny_model_dir()
    processor = AutoProcessor.from_pretrained(path)
    model = AutoModelForImageTextToText.from_pretrained(path)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from vagen.config import check_keys
from vagen.testing.tokenizer import (
    ENDOFTEXT,
    IM_END,
    IMAGE_PAD,
    VIDEO_PAD,
    VISION_END,
    VISION_START,
    build_tokenizer,
    corpus_digest,
)

DEFAULT_ROOT = Path("~/.cache/vagen/tiny_models")
PATCH_SIZE = 14
MERGE_SIZE = 2
# Bump when what is written changes without a config change, so old caches are not reused.
FORMAT_VERSION = 1


@dataclass(frozen=True)
class TinyModelConfig:
    """Sizes of the tiny model. Every field is part of the cache key of `tiny_model_dir`."""

    text_hidden_size: int = field(default=128, metadata={"help": "language model width"})
    text_layers: int = field(default=2, metadata={"help": "language model decoder layers"})
    text_heads: int = field(default=4, metadata={"help": "attention heads of the LM"})
    text_kv_heads: int = field(default=2, metadata={"help": "key/value heads of the LM (GQA)"})
    text_intermediate_size: int = field(default=256, metadata={"help": "LM MLP width"})
    vision_hidden_size: int = field(default=64, metadata={"help": "vision tower width"})
    vision_depth: int = field(default=2, metadata={"help": "vision tower blocks"})
    vision_heads: int = field(default=2, metadata={"help": "vision attention heads"})
    vision_intermediate_size: int = field(default=128, metadata={"help": "vision MLP width"})
    bpe_vocab_size: int = field(default=1024, metadata={
        "help": "upper bound of the trained BPE vocabulary (the corpus may fill less)"})
    number_tokens: bool = field(default=False, metadata={
        "help": "add the numbers 10-99 as single tokens: Qwen's pre-tokeniser splits digits, "
                "so a frame label is otherwise two tokens a tiny model must copy in turn"})
    min_pixels: int = field(default=28 * 28, metadata={
        "help": "smallest image area after resizing; one 28x28 block is one image token"})
    max_pixels: int = field(default=112 * 112, metadata={
        "help": "largest image area after resizing (112x112 = 16 image tokens); a 56x56 "
                "frame stays 56x56 and gives 4 tokens"})
    seed: int = field(default=0, metadata={"help": "seed of the random weights"})

    def __post_init__(self):
        for f in dataclasses.fields(self):
            if f.name not in ("seed", "number_tokens") and getattr(self, f.name) < 1:
                raise ValueError(f"TinyModelConfig.{f.name} must be >= 1, got "
                                 f"{getattr(self, f.name)}")
        for prefix, heads in (("text", self.text_heads), ("vision", self.vision_heads)):
            width = getattr(self, f"{prefix}_hidden_size")
            if width % heads or (width // heads) % 4:
                raise ValueError(f"TinyModelConfig.{prefix}_hidden_size={width} must split into "
                                 f"{prefix}_heads={heads} heads of a size divisible by 4 "
                                 f"(rotary embeddings); change either")
        if self.text_heads % self.text_kv_heads:
            raise ValueError(f"TinyModelConfig.text_heads={self.text_heads} must be a multiple "
                             f"of text_kv_heads={self.text_kv_heads}")
        block = (PATCH_SIZE * MERGE_SIZE) ** 2
        if not block <= self.min_pixels <= self.max_pixels:
            raise ValueError(f"TinyModelConfig needs {block} <= min_pixels <= max_pixels, got "
                             f"min_pixels={self.min_pixels}, max_pixels={self.max_pixels}")

    @classmethod
    def from_overrides(cls, **overrides) -> TinyModelConfig:
        """Defaults with `overrides` applied; an unknown key lists the valid ones."""
        check_keys(cls, sorted(overrides), where="TinyModelConfig", error=TypeError)
        return cls(**overrides)

    def cache_key(self) -> str:
        """Changes whenever the saved files would: config, tokenizer corpus, transformers."""
        import transformers

        text = json.dumps([dataclasses.asdict(self), corpus_digest(), transformers.__version__,
                           FORMAT_VERSION], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def mrope_section(head_dim: int) -> list[int]:
    """Rotary dims (pairs) for time, height, width; Qwen2.5-VL's [16, 24, 24] at head 128."""
    half = head_dim // 2
    spatial = 3 * half // 8
    return [half - 2 * spatial, spatial, spatial]


def build_model(config: TinyModelConfig, tokenizer):
    """A randomly initialised `Qwen2_5_VLForConditionalGeneration` whose token ids point into
    `tokenizer` (seeded by `config.seed`, without touching the global RNG)."""
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    ids = {tok: tokenizer.convert_tokens_to_ids(tok)
           for tok in (ENDOFTEXT, IM_END, IMAGE_PAD, VIDEO_PAD, VISION_START, VISION_END)}
    vocab_size = -(-len(tokenizer) // 64) * 64  # rounded up, like real checkpoints
    model_config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": config.text_hidden_size,
            "intermediate_size": config.text_intermediate_size,
            "num_hidden_layers": config.text_layers,
            "num_attention_heads": config.text_heads,
            "num_key_value_heads": config.text_kv_heads,
            "max_position_embeddings": 32768,
            "rms_norm_eps": 1e-6,
            "rope_parameters": {
                "rope_type": "default", "rope_theta": 1000000.0,
                "mrope_section": mrope_section(config.text_hidden_size // config.text_heads)},
            "bos_token_id": ids[ENDOFTEXT],
            "eos_token_id": ids[IM_END],
            "pad_token_id": ids[ENDOFTEXT],
        },
        vision_config={
            "depth": config.vision_depth,
            "hidden_size": config.vision_hidden_size,
            "intermediate_size": config.vision_intermediate_size,
            "num_heads": config.vision_heads,
            "out_hidden_size": config.text_hidden_size,
            "patch_size": PATCH_SIZE,
            "spatial_merge_size": MERGE_SIZE,
            "temporal_patch_size": 2,
            "tokens_per_second": 2,
            "window_size": 112,
            "fullatt_block_indexes": [config.vision_depth - 1],
        },
        image_token_id=ids[IMAGE_PAD],
        video_token_id=ids[VIDEO_PAD],
        vision_start_token_id=ids[VISION_START],
        vision_end_token_id=ids[VISION_END],
        tie_word_embeddings=False,
    )
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        model = Qwen2_5_VLForConditionalGeneration(model_config)
    model.generation_config = GenerationConfig(
        bos_token_id=ids[ENDOFTEXT], eos_token_id=[ids[IM_END], ids[ENDOFTEXT]],
        pad_token_id=ids[ENDOFTEXT], do_sample=False)
    return model.eval()


def build_processor(config: TinyModelConfig, tokenizer):
    """`Qwen2_5_VLProcessor` with small pixel limits for images and videos alike."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    # A fresh `size` dict each: passing min/max_pixels instead would mutate the classes'
    # shared default dict.
    def size() -> dict:
        return {"shortest_edge": config.min_pixels, "longest_edge": config.max_pixels}

    common = {"patch_size": PATCH_SIZE, "merge_size": MERGE_SIZE, "temporal_patch_size": 2}
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=size(), **common),
        video_processor=Qwen2VLVideoProcessor(size=size(), **common),
        tokenizer=tokenizer,
        chat_template=tokenizer.chat_template,
    )


def tiny_model_dir(root: str | Path | None = None, **overrides) -> Path:
    """The folder holding the tiny model, tokenizer and processor for `TinyModelConfig(
    **overrides)`, built on first use under `root` (default `~/.cache/vagen/tiny_models`) in a
    sub-folder named by the config's hash. Concurrent callers are safe: each builds into a
    temporary folder and renames it into place; the first rename wins."""
    config = TinyModelConfig.from_overrides(**overrides)
    root = Path(root if root is not None else DEFAULT_ROOT).expanduser()
    target = root / f"qwen2_5_vl-{config.cache_key()}"
    if (target / "config.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=root))
    try:
        tokenizer = build_tokenizer(config.bpe_vocab_size, config.number_tokens)
        build_model(config, tokenizer).save_pretrained(staging)
        build_processor(config, tokenizer).save_pretrained(staging)
        (staging / "tiny_model_config.json").write_text(
            json.dumps(dataclasses.asdict(config), indent=2) + "\n")
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
