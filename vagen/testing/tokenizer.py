"""A small Qwen2-style tokenizer trained offline on a built-in corpus, so tests and the quick
start need no hub download. It is a real `Qwen2Tokenizer` (byte-level BPE with Qwen's
pre-tokenizer), so any text encodes without an unknown token, and it carries the Qwen-VL
special tokens, our action tags (one token each) and the Qwen2.5-VL chat template."""

from __future__ import annotations

import hashlib
import itertools
import json

from vagen.env.video_qa.protocols import action_tags

# In Qwen2.5-VL's order; all special (skipped by `decode(skip_special_tokens=True)`).
ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
VISION_START = "<|vision_start|>"
VISION_END = "<|vision_end|>"
IMAGE_PAD = "<|image_pad|>"
VIDEO_PAD = "<|video_pad|>"
SPECIAL_TOKENS = (
    ENDOFTEXT, IM_START, IM_END,
    "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>", "<|box_end|>",
    "<|quad_start|>", "<|quad_end|>",
    VISION_START, VISION_END, "<|vision_pad|>", IMAGE_PAD, VIDEO_PAD,
)

# The chat template of the Qwen2.5-VL Instruct checkpoints, verbatim, so prompts render
# exactly as they do for the real model.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}"
    "Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

COLOURS = ("red", "green", "blue", "yellow", "white", "black", "orange", "purple", "pink",
           "gray", "brown")
SHAPES = ("square", "circle", "triangle", "star", "rectangle", "dot", "mark", "shape")
_PROSE = """\
You are a helpful assistant.
You answer a question about a video by looking at its frames. Each frame is labelled with its
index in the video's frame pool (numbered from 0) and its time in seconds. First you see 16
frames spread over the video.
Think inside <think>...</think>, then either answer with <answer>X</answer>: the option letter,
or the value asked for, or retrieve frames: <retrieve>start,end</retrieve> with frame indices
start <= end returns up to 8 frames from that range; they replace the frames you saw before.
Ask for frames: <query>...</query>. Name frames ("frames 20-35", "frame 12, 14") or times
("at 12.5s", "20-30s"); without them you get the next 8 frames you have not seen. Frames come
back inside <response>...</response>. You may keep notes in <summary>...</summary>.
Ask for frames at exact times: <frames>t1,t2,...</frames> in seconds (at most 8 per turn).
You have 3 turns; the last one must be an answer. This is your last turn: you must answer now.
You have 2 turns left: answer with <answer>...</answer> or ask for frames.
With several videos (numbered from 0) each frame is labelled with its video and the frames are
shared among the videos. To look at one video, name it: <retrieve>video 1: 24,31</retrieve>
Example, for a 60 s video. The video lasts 60.0s (frames 0-59). There are 3 videos.
Question: What colour did the square turn? Options: A. red B. yellow C. blue D. green
Question: Which event came first? How many times did the circle appear?
At which second did the mark appear? In which video did the triangle turn blue?
The square is in the frames from 24 s to 31 s, but none shows it change colour.
I will look at those frames. The square was red and turned yellow at 27 s.
Invalid action: no answer and no request for frames. The answer is B.
"""


def corpus() -> list[str]:
    """The training text: the prompts and answers of our envs plus every colour/shape/number
    phrase they use, so common words are one or two tokens."""
    lines = _PROSE.splitlines()
    for colour, shape in itertools.product(COLOURS, SHAPES):
        lines.append(f"The {colour} {shape} turned {colour} and a small {colour} dot appeared "
                     f"on the {shape}.")
    for i in range(100):
        lines.append(f"Frame {i} at {i + 0.5:.1f}s: Video {i % 6} frame {i} at {i}.{i % 10}s "
                     f"second {i} seconds {i}s")
    return lines


def corpus_digest() -> str:
    """A hash of everything that decides the tokenizer, for cache keys."""
    text = json.dumps([corpus(), SPECIAL_TOKENS, action_tags(), CHAT_TEMPLATE])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


NUMBER_TOKENS = tuple(str(i) for i in range(10, 100))


def build_tokenizer(vocab_size: int = 1024, number_tokens: bool = False):
    """Train byte-level BPE (at most `vocab_size` entries, 256 of them the byte alphabet) on
    `corpus()` with Qwen2's normaliser and pre-tokeniser, then wrap it as a `Qwen2Tokenizer`
    (the class a real Qwen2.5-VL checkpoint loads) with the special tokens appended in
    Qwen's order, then the action tags, then (`number_tokens`) "10".."99" as added tokens,
    which are matched before the pre-tokeniser splits digits."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, trainers
    from tokenizers.models import BPE
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    if vocab_size < 257:
        raise ValueError(f"vocab_size={vocab_size} must exceed the 256 byte tokens")
    bpe = Tokenizer(BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(corpus(), trainer)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]

    tokenizer = Qwen2Tokenizer(vocab=model["vocab"], merges=merges, unk_token=None,
                               eos_token=ENDOFTEXT, pad_token=ENDOFTEXT)
    tokenizer.add_special_tokens({"extra_special_tokens": list(SPECIAL_TOKENS[1:])})
    tokenizer.eos_token = IM_END  # as in the Instruct checkpoints: a reply ends the turn
    # The registered protocols' tags: added, not special, so they survive decoding and the
    # policy emits each one as a single token.
    tokenizer.add_tokens(list(action_tags()), special_tokens=False)
    if number_tokens:
        tokenizer.add_tokens(list(NUMBER_TOKENS), special_tokens=False)
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer
