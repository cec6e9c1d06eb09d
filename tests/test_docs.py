"""The project's own docs are the living description: every path a `.md` file or a vagen
docstring/comment names exists in the repository, and nothing points outside it."""

from __future__ import annotations

import ast
import io
import os
import re
import subprocess
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# A repository path as docs write it: under one of the top folders, with a file or folder
# name of plain characters (placeholders like <name> or * are not paths).
PATH = re.compile(r"(?<![\w./-])((?:vagen|tests|scripts|benchmarks|docs|data)/[\w./-]*[\w/])")
OUTSIDE = re.compile(r"\.\./shared|(?<![\w.])/shared/")


def tracked(*suffixes: str) -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    return [ROOT / name for name in names if name.endswith(suffixes)]


def prose(path: Path) -> str:
    """What a file says to a reader: a `.md` file whole; the docstrings and comments of a
    `.py` file; the comment lines of a shell or YAML file (string values are data)."""
    text = path.read_text(errors="replace")
    if path.suffix == ".md":
        return text
    if path.suffix != ".py":
        return "\n".join(line for line in text.splitlines() if line.lstrip().startswith("#"))
    parts = [token.string for token in tokenize.generate_tokens(io.StringIO(text).readline)
             if token.type == tokenize.COMMENT]
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            parts.append(ast.get_docstring(node) or "")
    return "\n".join(parts)


def named_paths(text: str) -> set[str]:
    return {m.rstrip("./") for m in PATH.findall(text) if not m.startswith("data/")
            or m.startswith("data/README")}


def test_every_path_the_docs_and_code_comments_name_exists():
    missing = []
    for path in tracked(".md", ".py", ".sh", ".yaml"):
        for name in sorted(named_paths(prose(path))):
            if not (ROOT / name).exists() and not name.startswith("tests/fixtures/<"):
                missing.append(f"{path.relative_to(ROOT)}: {name}")
    assert not missing, "\n".join(missing)


def test_nothing_points_outside_the_repository():
    found = [f"{path.relative_to(ROOT)}: {line.strip()}"
             for path in tracked(".md", ".py", ".sh", ".yaml", ".toml")
             if path.name != "test_docs.py"
             for line in path.read_text(errors="replace").splitlines() if OUTSIDE.search(line)]
    assert not found, "\n".join(found)


def test_the_path_check_sees_a_missing_module():
    assert named_paths("see `vagen/env/nothing.py` and vagen/env/base.py.") == {
        "vagen/env/nothing.py", "vagen/env/base.py"}


def example(doc: Path, name: str) -> str:
    """The python block after `<!-- example: name -->` in `doc`."""
    text = doc.read_text()
    marker = f"<!-- example: {name} -->\n```python\n"
    start = text.index(marker) + len(marker)
    return text[start:text.index("```", start)]


# Plays the protocol of docs/extending.md (saved as clip.py on the path) in a fresh
# interpreter, so its registration reaches no other test.
PLAY_CLIP = """
import sys
import clip  # noqa: F401  (registers "clip")
from vagen.data.synthetic import SAMPLES_FILE, SynthConfig, generate_dataset
from vagen.env import check_env
from vagen.env.video_qa import ConfigError, VideoQAConfig, VideoQAEnv
from vagen.env.video_qa.protocols import request_actions, stop_strings
from vagen.testing.tokenizer import build_tokenizer

root = sys.argv[1]
generate_dataset(root, 2, seed=0, config=SynthConfig(
    kinds=["color"], min_duration_s=12, max_duration_s=16, min_carrier_s=6,
    max_carrier_s=8, fps=2, size=32))
config = VideoQAConfig(protocol="clip", data=f"{root}/{SAMPLES_FILE}", initial_frames=4,
                       frames_per_turn=2, pool_max_frames=16, max_pixels=3136, min_pixels=784)
env = VideoQAEnv(config)
check_env(env)
assert "<clip>start,end</clip> in seconds" in env.system_prompt()
env.reset(0)
request = env.oracle_action()
assert request.endswith("</clip>") and "<clip>" in request, request
result = env.step(request)
assert result.info["action_type"] == "clip" and result.info["valid_action"], result.info
start, end = map(float, request[request.index("<clip>") + 6:-len("</clip>")].split(","))
assert 1 <= len(result.obs.frames) <= 2, result.obs.text
assert all(start <= t <= end for t in result.obs.timestamps), (request, result.obs.timestamps)
env.reset(0)
wrong = env.step("<clip>5</clip>")
assert not wrong.info["valid_action"] and "start,end in seconds" in wrong.info["error"]
assert "</clip>" in stop_strings() and "clip" in request_actions()
tokenizer = build_tokenizer()
assert len(tokenizer.encode("<clip>")) == 1 and len(tokenizer.encode("</clip>")) == 1
try:
    VideoQAConfig(protocol="clap")
except ConfigError as err:
    assert "use one of retrieve, query, timestamps, single, clip" in str(err), err
else:
    raise AssertionError("an unknown protocol was accepted")
print("played")
"""


def test_the_protocol_example_of_extending_md_is_a_protocol_in_one_file(tmp_path):
    (tmp_path / "clip.py").write_text(example(ROOT / "docs" / "extending.md", "protocol"))
    done = subprocess.run([sys.executable, "-c", PLAY_CLIP, str(tmp_path / "data")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert done.returncode == 0 and done.stdout.strip() == "played", done.stderr[-3000:]
