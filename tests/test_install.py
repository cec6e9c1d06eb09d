"""`install.sh --gpu --dry-run` lists what the 7B recipes need: every distribution their
start-up imports come from is requested, directly or as a dependency of what is."""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
# What run_7B.sh starts: the vagen CLI (data, env servers), verl's trainer with our layer,
# and in verl's workers the agent loop, reward, estimators, critic and training engine.
STARTUP_MODULES = [
    "vagen.cli", "vagen.server.app", "vagen.trainer.verl.main", "vagen.trainer.verl.agent_loop",
    "vagen.trainer.verl.reward", "vagen.trainer.verl.advantages", "vagen.trainer.verl.critic",
    "verl.trainer.main_ppo", "verl.trainer.main_ppo_v0", "verl.trainer.ppo.ray_trainer",
    "verl.workers.engine_workers", "ray"]
# Imported on the GPU nodes only (rollout.name=vllm; flash_attention_2 in the FSDP engine).
GPU_ONLY = {"vllm", "flash-attn"}


@functools.cache
def dry_run(*args: str) -> list[list[str]]:
    out = subprocess.run(["bash", str(ROOT / "install.sh"), *args, "--dry-run"], check=True,
                         capture_output=True, text=True, timeout=120).stdout
    return [line.split("#")[0].split()[2:] for line in out.splitlines()
            if line.startswith("pip install ")]


def requested(commands: list[list[str]]) -> list[Requirement]:
    """The requirements of the printed pip commands (`-e .[x]` is vagen with extra x)."""
    requirements = []
    for words in commands:
        for word in words:
            if word.startswith("-"):
                continue
            requirements.append(Requirement(re.sub(r"^\.", "vagen", word)))
    return requirements


def closure(requirements: list[Requirement]) -> set[str]:
    """Names of the distributions pip would install for `requirements`, read from the
    metadata installed here (a distribution not installed here counts by its name)."""
    seen: set[tuple[str, frozenset[str]]] = set()
    names: set[str] = set()
    todo = [(r, frozenset(r.extras)) for r in requirements]
    while todo:
        requirement, extras = todo.pop()
        name = canonicalize_name(requirement.name)
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        names.add(name)
        try:
            requires = metadata.requires(requirement.name) or []
        except metadata.PackageNotFoundError:
            continue
        for line in requires:
            dependency = Requirement(line)
            marker = dependency.marker
            if marker is None or any(marker.evaluate({"extra": extra}) for extra in extras) \
                    or (not extras and marker.evaluate({"extra": ""})):
                todo.append((dependency, frozenset(dependency.extras)))
    return names


def start_up_with_only(names: set[str], view: Path) -> subprocess.CompletedProcess:
    """The start-up imports in a fresh interpreter that sees only the installed
    distributions in `names` (linked into `view`, no site-packages), as on a machine that has
    only what install.sh installed: a library importing a package only if present starts."""
    view.mkdir()
    for dist in metadata.distributions():
        if canonicalize_name(dist.metadata["Name"]) not in names or dist.files is None:
            continue
        for top in {file.parts[0] for file in dist.files if file.parts[0] != ".."}:
            source = Path(dist.locate_file(top))
            if source.exists() and not (view / top).exists():
                (view / top).symlink_to(source)
    script = f"import importlib\nfor name in {STARTUP_MODULES!r}: importlib.import_module(name)"
    # vagen is importable from the checkout (cwd); its entry points from its linked metadata.
    return subprocess.run([sys.executable, "-S", "-c", script], capture_output=True, text=True,
                          timeout=300, cwd=ROOT, env={"PYTHONPATH": str(view), "HOME": str(view)})


@functools.cache
def gpu_names() -> frozenset[str]:
    return frozenset(closure(requested(dry_run("--gpu"))))


def test_gpu_dry_run_requests_every_distribution_the_recipes_import(tmp_path):
    names = gpu_names()
    assert GPU_ONLY <= names
    started = start_up_with_only(names, tmp_path / "site")
    assert started.returncode == 0, started.stderr[-3000:]


def test_the_start_up_check_catches_a_missing_distribution(tmp_path):
    names = gpu_names() - {"hydra-core"}
    started = start_up_with_only(names, tmp_path / "site")
    assert started.returncode != 0 and "No module named 'hydra'" in started.stderr


def test_gpu_profile_pins_what_verl_pins_for_vllm():
    pins = {canonicalize_name(r.name): str(r.specifier) for r in requested(dry_run("--gpu"))}
    assert pins["vllm"] == "==0.24.0"
    assert pins["verl"] == "==0.9.1" and pins["transformers"] == "==5.9.0"
    verl_extras = [set(r.extras) for r in requested(dry_run("--gpu")) if r.name == "verl"]
    assert {"vllm"} in verl_extras and {"flash-attn-cu130torch211"} in verl_extras


def test_cpu_profile_has_verl_for_its_seams_but_no_gpu_packages():
    names = closure(requested(dry_run()))
    assert "verl" in names and "vagen" in names
    assert not GPU_ONLY & names
