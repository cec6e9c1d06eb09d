"""The project's own docs are the living description: every path a `.md` file or a vagen
docstring/comment names exists in the repository, and nothing points outside it."""

from __future__ import annotations

import ast
import io
import re
import subprocess
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
