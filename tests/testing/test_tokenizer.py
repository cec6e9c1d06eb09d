"""The tiny tokenizer as loaded back from disk: Qwen's special tokens, our action tags as
single tokens, lossless text, and the Qwen2.5-VL chat template."""

import pytest

from vagen.env.video_qa.protocols import action_tags
from vagen.testing.tokenizer import SPECIAL_TOKENS, build_tokenizer


@pytest.fixture(scope="module")
def tokenizer(tiny_processor):
    return tiny_processor.tokenizer


def test_special_tokens_are_consecutive_in_qwen_order_after_the_bpe_vocab(tokenizer):
    ids = tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS))
    first = len(tokenizer) - len(SPECIAL_TOKENS) - len(action_tags())
    assert ids == list(range(first, first + len(SPECIAL_TOKENS)))
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.pad_token == "<|endoftext|>"
    assert tokenizer.unk_token is None


def test_reloaded_tokenizer_encodes_like_the_freshly_built_one(tokenizer):
    fresh = build_tokenizer()
    text = "<|im_start|>user\nFrame 3 at 3.5s: <|vision_start|><|image_pad|><|vision_end|>"
    assert tokenizer(text).input_ids == fresh(text).input_ids
    assert len(tokenizer) == len(fresh)


@pytest.mark.parametrize("tag", action_tags())
def test_every_action_tag_is_one_token_even_inside_words(tokenizer, tag):
    tag_id = tokenizer.convert_tokens_to_ids(tag)
    assert tokenizer.encode(tag, add_special_tokens=False) == [tag_id]
    ids = tokenizer.encode(f"x{tag}12", add_special_tokens=False)
    assert ids.count(tag_id) == 1
    assert tokenizer.decode(ids, skip_special_tokens=True) == f"x{tag}12"


def test_decode_skips_qwen_special_tokens_but_keeps_action_tags(tokenizer):
    text = "<|im_start|>assistant\n<think>red</think><answer>B</answer><|im_end|>"
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids, skip_special_tokens=True) == \
        "assistant\n<think>red</think><answer>B</answer>"


@pytest.mark.parametrize("text", [
    "The red square turned yellow at 27 s.",
    "  two  spaces,\ttabs\nand\r\nnewlines\n\n",
    "Unicode: é, ß, 中文, emoji 🙂, math ∑x²",
    "<retrieve>24,31</retrieve><frames>24.5,25.5</frames> 1,200 -3.5 65.4%",
    "",
])
def test_any_text_round_trips_through_encode_and_decode(tokenizer, text):
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids) == text


def test_corpus_words_are_single_tokens(tokenizer):
    tokens = tokenizer.tokenize("The red square turned yellow frame video seconds")
    assert tokens == ["The", "Ġred", "Ġsquare", "Ġturned", "Ġyellow", "Ġframe", "Ġvideo",
                      "Ġseconds"]


SYSTEM_USER_ASSISTANT = (
    "<|im_start|>system\nRules<|im_end|>\n"
    "<|im_start|>user\nFrame 0 at 0.5s: <|vision_start|><|image_pad|><|vision_end|>"
    "Frame 1 at 1.5s: <|vision_start|><|image_pad|><|vision_end|>Question?<|im_end|>\n"
    "<|im_start|>assistant\n<think>t</think><answer>B</answer><|im_end|>\n"
)
CHAT = [
    {"role": "system", "content": "Rules"},
    {"role": "user", "content": [
        {"type": "text", "text": "Frame 0 at 0.5s: "}, {"type": "image"},
        {"type": "text", "text": "Frame 1 at 1.5s: "}, {"type": "image"},
        {"type": "text", "text": "Question?"}]},
    {"role": "assistant", "content": "<think>t</think><answer>B</answer>"},
]


def test_chat_template_renders_qwen_turns_and_image_placeholders(tiny_processor, tokenizer):
    assert tiny_processor.apply_chat_template(CHAT, tokenize=False) == SYSTEM_USER_ASSISTANT
    assert tokenizer.apply_chat_template(CHAT, tokenize=False) == SYSTEM_USER_ASSISTANT


def test_chat_template_adds_default_system_and_generation_prompt(tiny_processor):
    text = tiny_processor.apply_chat_template([{"role": "user", "content": "hi"}],
                                              tokenize=False, add_generation_prompt=True)
    assert text == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")


def test_number_tokens_make_every_two_digit_label_one_token():
    from vagen.testing.tokenizer import build_tokenizer

    numbered = build_tokenizer(number_tokens=True)
    ids = numbered.encode("<retrieve>17,25</retrieve>", add_special_tokens=False)
    assert [numbered.decode([i]) for i in ids] == ["<retrieve>", "17", ",", "25", "</retrieve>"]
    assert numbered.decode(numbered.encode("frame 99 at 100.5s")) == "frame 99 at 100.5s"
    plain = build_tokenizer()
    assert len(plain.encode("17", add_special_tokens=False)) == 2  # Qwen splits digits


def test_number_tokens_are_part_of_the_tiny_model_cache_key():
    from vagen.testing.tiny_model import TinyModelConfig

    assert (TinyModelConfig(number_tokens=True).cache_key()
            != TinyModelConfig().cache_key())
