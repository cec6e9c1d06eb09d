"""The tiny Qwen2.5-VL as a user meets it: saved, loaded back through the Auto classes, fed
chats with several images (and a video), trained for a step and asked to generate."""

import threading

import numpy as np
import pytest
import torch

from vagen.testing.tiny_model import TinyModelConfig, build_model, mrope_section, tiny_model_dir
from vagen.testing.tokenizer import build_tokenizer


def _chat(processor, images, video=False):
    content = []
    for i in range(len(images)):
        content += [{"type": "text", "text": f"Frame {i} at {i + 0.5}s: "}, {"type": "image"}]
    if video:
        content.append({"type": "video"})
    content.append({"type": "text", "text": "What colour did the square turn?"})
    text = processor.apply_chat_template([{"role": "user", "content": content}],
                                         tokenize=False, add_generation_prompt=True)
    return processor(text=[text], images=images or None, return_tensors="pt",
                     videos=[np.zeros((4, 56, 56, 3), np.uint8)] if video else None)


def _frame(height, width, value):
    return np.full((height, width, 3), value, np.uint8)


def test_auto_classes_load_the_qwen2_5_vl_classes(tiny_model_path, tiny_processor, tiny_model):
    assert type(tiny_processor).__name__ == "Qwen2_5_VLProcessor"
    assert type(tiny_processor.tokenizer).__name__ == "Qwen2Tokenizer"
    assert type(tiny_processor.image_processor).__name__ == "Qwen2VLImageProcessor"
    assert type(tiny_processor.video_processor).__name__ == "Qwen2VLVideoProcessor"
    assert type(tiny_model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert 500_000 < tiny_model.num_parameters() < 1_500_000


def test_config_token_ids_point_at_the_tokenizer(tiny_processor, tiny_model):
    tok, config = tiny_processor.tokenizer, tiny_model.config
    assert config.image_token_id == tok.convert_tokens_to_ids("<|image_pad|>")
    assert config.video_token_id == tok.convert_tokens_to_ids("<|video_pad|>")
    assert config.vision_start_token_id == tok.convert_tokens_to_ids("<|vision_start|>")
    assert config.vision_end_token_id == tok.convert_tokens_to_ids("<|vision_end|>")
    assert config.text_config.eos_token_id == tok.eos_token_id
    assert config.text_config.pad_token_id == tok.pad_token_id
    assert tiny_model.generation_config.eos_token_id == [tok.eos_token_id, tok.pad_token_id]
    assert len(tok) <= config.text_config.vocab_size < len(tok) + 64


def test_saved_weights_are_the_seeded_random_weights(tiny_model):
    rebuilt = build_model(TinyModelConfig(), build_tokenizer()).state_dict()
    loaded = tiny_model.state_dict()
    assert rebuilt.keys() == loaded.keys()
    assert all(torch.equal(rebuilt[k], loaded[k]) for k in loaded)
    other = build_model(TinyModelConfig(seed=1), build_tokenizer()).state_dict()
    assert not torch.equal(other["lm_head.weight"], loaded["lm_head.weight"])


@pytest.mark.parametrize("size, tokens", [
    ((56, 56), 4),      # 4x4 patches of 14, merged 2x2
    ((64, 64), 4),      # rounded to 56x56
    ((84, 112), 12),    # 6x8 patches
    ((448, 448), 16),   # capped by max_pixels = 112*112
])
def test_image_tokens_per_frame_size(tiny_processor, size, tokens):
    inputs = _chat(tiny_processor, [_frame(*size, 0)])
    assert inputs["image_grid_thw"].prod(-1).item() // 4 == tokens
    image_id = tiny_processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert (inputs["input_ids"] == image_id).sum().item() == tokens


def test_image_tokens_equal_image_features_with_two_images(tiny_processor, tiny_model):
    inputs = _chat(tiny_processor, [_frame(56, 56, 10), _frame(84, 112, 200)])
    with torch.no_grad():
        features = tiny_model.model.get_image_features(
            inputs["pixel_values"], inputs["image_grid_thw"]).pooler_output
    assert [f.shape for f in features] == [(4, 128), (12, 128)]
    num_image_tokens = (inputs["input_ids"] == tiny_model.config.image_token_id).sum().item()
    assert num_image_tokens == sum(len(f) for f in features) == 16


def test_forward_with_two_images_trains_the_vision_tower(tiny_processor, tiny_model):
    inputs = _chat(tiny_processor, [_frame(56, 56, 10), _frame(56, 56, 200)])
    tiny_model.zero_grad()
    out = tiny_model(**inputs, labels=inputs["input_ids"])
    assert out.logits.shape == (1, inputs["input_ids"].shape[1],
                                tiny_model.config.text_config.vocab_size)
    assert torch.isfinite(out.loss) and out.loss.item() > 0
    out.loss.backward()
    grad = tiny_model.model.visual.patch_embed.proj.weight.grad
    assert grad is not None and grad.abs().sum().item() > 0
    tiny_model.zero_grad()


def test_images_change_the_logits(tiny_processor, tiny_model):
    dark = _chat(tiny_processor, [_frame(56, 56, 10), _frame(56, 56, 10)])
    light = _chat(tiny_processor, [_frame(56, 56, 10), _frame(56, 56, 240)])
    assert torch.equal(dark["input_ids"], light["input_ids"])
    with torch.no_grad():
        diff = (tiny_model(**dark).logits[0, -1] - tiny_model(**light).logits[0, -1]).abs()
    assert diff.max().item() > 1e-4


def test_greedy_generate_with_two_images_is_deterministic(tiny_processor, tiny_model):
    inputs = _chat(tiny_processor, [_frame(56, 56, 10), _frame(84, 112, 200)])
    prompt_len = inputs["input_ids"].shape[1]
    with torch.no_grad():
        first = tiny_model.generate(**inputs, max_new_tokens=6, min_new_tokens=6)
        second = tiny_model.generate(**inputs, max_new_tokens=6, min_new_tokens=6)
    assert first.shape == (1, prompt_len + 6)
    assert torch.equal(first[:, :prompt_len], inputs["input_ids"])
    assert torch.equal(first, second)
    assert isinstance(tiny_processor.decode(first[0, prompt_len:]), str)


def test_video_tokens_equal_video_features(tiny_processor, tiny_model):
    inputs = _chat(tiny_processor, [_frame(56, 56, 10)], video=True)
    assert inputs["video_grid_thw"].tolist() == [[2, 4, 4]]  # 4 frames, 2 per temporal patch
    video_tokens = (inputs["input_ids"] == tiny_model.config.video_token_id).sum().item()
    with torch.no_grad():
        features = tiny_model.model.get_video_features(
            inputs["pixel_values_videos"], inputs["video_grid_thw"]).pooler_output
        logits = tiny_model(**inputs).logits
    assert video_tokens == len(features[0]) == 8
    assert torch.isfinite(logits).all()


def test_tiny_model_dir_is_built_once_and_reused(tiny_model_path):
    weights = tiny_model_path / "model.safetensors"
    before = weights.stat().st_mtime_ns
    assert tiny_model_dir(tiny_model_path.parent) == tiny_model_path
    assert weights.stat().st_mtime_ns == before


def test_racing_builds_share_one_folder_and_leave_no_staging(tmp_path):
    paths = []
    threads = [threading.Thread(target=lambda: paths.append(tiny_model_dir(tmp_path)))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(paths) == 2 and paths[0] == paths[1]
    assert [p.name for p in tmp_path.iterdir()] == [paths[0].name]
    assert (paths[0] / "model.safetensors").is_file()


def test_cache_key_follows_the_config():
    assert TinyModelConfig().cache_key() == TinyModelConfig().cache_key()
    assert TinyModelConfig(text_layers=3).cache_key() != TinyModelConfig().cache_key()
    assert TinyModelConfig(seed=1).cache_key() != TinyModelConfig().cache_key()


def test_bad_overrides_name_the_key():
    with pytest.raises(TypeError, match="TinyModelConfig: unknown key 'text_layer'; valid keys"):
        tiny_model_dir(text_layer=3)
    with pytest.raises(ValueError, match="text_hidden_size=100.*text_heads=4"):
        TinyModelConfig(text_hidden_size=100)
    with pytest.raises(ValueError, match="min_pixels"):
        TinyModelConfig(max_pixels=20 * 20)


def test_mrope_section_scales_qwen_7b_split():
    assert mrope_section(128) == [16, 24, 24]  # Qwen2.5-VL-7B
    assert mrope_section(32) == [4, 6, 6]
