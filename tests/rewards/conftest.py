import json
from pathlib import Path

import pytest


@pytest.fixture
def debug_log(tmp_path, monkeypatch):
    """Turn on the reward debug log; returns a function that reads its JSON lines."""
    path = tmp_path / "rewards.jsonl"
    monkeypatch.setenv("DEBUG_MODE", "true")
    monkeypatch.setenv("LOG_PATH", str(path))

    def lines() -> list[dict]:
        return [json.loads(line) for line in Path(path).read_text().splitlines()]

    lines.path = path
    return lines


@pytest.fixture(autouse=True)
def _debug_off(monkeypatch):
    """Tests start with the debug log off, whatever the shell says."""
    monkeypatch.delenv("DEBUG_MODE", raising=False)
    monkeypatch.delenv("LOG_PATH", raising=False)
