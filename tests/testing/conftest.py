"""The tiny Qwen2.5-VL, built once per test session into a temporary folder and loaded back
through the Auto classes, as a user loads a real checkpoint."""


import pytest


@pytest.fixture(scope="session")
def tiny_processor(tiny_model_path):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_model_path)


@pytest.fixture(scope="session")
def tiny_model(tiny_model_path):
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(tiny_model_path).eval()
