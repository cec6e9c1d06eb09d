"""Offline stand-ins for real checkpoints and videos: a tiny random Qwen2.5-VL saved with its
tokenizer and processor like a real checkpoint (`tiny_model_dir`), and small MP4s whose
frames encode their index (`make_test_video`)."""

from vagen.testing.tiny_model import TinyModelConfig, tiny_model_dir
from vagen.testing.videos import frame_colour, frame_index, make_test_video

__all__ = ["TinyModelConfig", "frame_colour", "frame_index", "make_test_video", "tiny_model_dir"]
