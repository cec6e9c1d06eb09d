"""The tiny Qwen2.5-VL, built once per test session into a temporary folder and loaded back
through the Auto classes, as a user loads a real checkpoint."""

from pathlib import Path

import pytest

from vagen.testing.tiny_model import tiny_model_dir


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    return tiny_model_dir(tmp_path_factory.mktemp("tiny_models"))


@pytest.fixture(scope="session")
def tiny_processor(tiny_model_path):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_model_path)


@pytest.fixture(scope="session")
def tiny_model(tiny_model_path):
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(tiny_model_path).eval()
