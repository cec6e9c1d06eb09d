"""The policy an evaluation plays, loaded from a local checkpoint folder by backend name
(registered by decorator; unknown names list the valid ones). Heavy imports (torch,
transformers, vllm) happen inside the loaders, so a data-parallel worker can pin its GPU
with `CUDA_VISIBLE_DEVICES` before any of them runs."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vagen.registry import Registry
from vagen.rollout.backends.base import PolicyBackend
from vagen.rollout.tokens import ChatCodec

DEVICES = ("cpu", "cuda")
PolicyLoader = Callable[[Path, str], tuple[PolicyBackend, ChatCodec]]
DeviceCheck = Callable[[str], None]


@dataclass(frozen=True)
class _Backend:
    load: PolicyLoader
    check: DeviceCheck  # raises PolicyError when the backend cannot run on the device


_BACKENDS: Registry[_Backend] = Registry("policy backend")


class PolicyError(ValueError):
    """A policy that cannot be loaded as asked; the message says what to change."""


def register_policy_backend(name: str, check: DeviceCheck | None = None
                            ) -> Callable[[PolicyLoader], PolicyLoader]:
    """Register `loader(model_dir, device) -> (policy, codec)` under `name`, with a cheap
    `check(device)` run before any work starts (so a missing package fails at once)."""

    def decorator(loader: PolicyLoader) -> PolicyLoader:
        _BACKENDS.add(name, _Backend(loader, check or (lambda device: None)))
        return loader

    return decorator


def list_policy_backends() -> list[str]:
    return _BACKENDS.names()


def check_policy(backend: str, model: str | Path, device: str) -> Path:
    """Fail now, with what to change, if `load_policy` cannot work; returns the folder."""
    if backend not in _BACKENDS:
        raise PolicyError(f"unknown backend '{backend}'; choose from: "
                          f"{', '.join(list_policy_backends())}")
    if device not in DEVICES:
        raise PolicyError(f"unknown device '{device}'; choose from: {', '.join(DEVICES)}")
    path = Path(model).expanduser()
    if not (path / "config.json").is_file():
        raise PolicyError(f"model '{model}' is not a local checkpoint folder (no config.json); "
                          "evaluation never downloads: give the folder a checkpoint was saved "
                          "to, or download one first (source hf.sh)")
    _BACKENDS.get(backend).check(device)
    return path


def load_policy(backend: str, model: str | Path, device: str) -> tuple[PolicyBackend, ChatCodec]:
    """The policy and its chat codec from the checkpoint folder `model` (never downloads)."""
    path = check_policy(backend, model, device)
    return _BACKENDS.get(backend).load(path, device)


def _codec(path: Path) -> ChatCodec:
    from transformers import AutoProcessor

    return ChatCodec(AutoProcessor.from_pretrained(path))


def _hf_device(device: str) -> None:
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise PolicyError("--device cuda but torch sees no GPU; use --device cpu")


def _vllm_device(device: str) -> None:
    if device != "cuda":
        raise PolicyError("--backend vllm runs on GPUs only; use --device cuda, or --backend hf "
                          "on the CPU")
    if importlib.util.find_spec("vllm") is None:
        raise PolicyError("--backend vllm needs the vllm package, which is not installed "
                          "(bash install.sh --gpu installs it); or use --backend hf")
    if importlib.util.find_spec("vagen.rollout.backends.vllm") is None:
        raise PolicyError("this vagen has no vLLM policy backend (vagen/rollout/backends/"
                          "vllm.py); use --backend hf")


@register_policy_backend("hf", check=_hf_device)
def _load_hf(path: Path, device: str) -> tuple[PolicyBackend, ChatCodec]:
    """transformers `generate` on the CPU or the one visible GPU (bf16 on GPU)."""
    import torch
    from transformers import AutoModelForImageTextToText

    from vagen.rollout.backends.hf import HFBackend
    from vagen.rollout.vision_attention import pack_vision_attention
    from vagen.rollout.vision_features import VisionFeatures

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype).to(device).eval()
    pack_vision_attention(model)
    codec = _codec(path)
    vision = VisionFeatures() if VisionFeatures.supports(model) else None
    return HFBackend(model, codec, vision), codec


@register_policy_backend("vllm", check=_vllm_device)
def _load_vllm(path: Path, device: str) -> tuple[PolicyBackend, ChatCodec]:
    """A vLLM engine on the one visible GPU: `VLLMBackend(model_dir, codec)`."""
    from vagen.rollout.backends.vllm import VLLMBackend

    codec = _codec(path)
    return VLLMBackend(str(path), codec), codec
