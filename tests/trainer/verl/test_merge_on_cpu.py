"""Evaluating a verl checkpoint: one written by verl's own `FSDPCheckpointManager` (FSDP2 on
one CPU rank, gloo), merged once by verl's model merger, then scored by run_eval.sh."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.eval.test_run_eval import _env_config, _run
from vagen.trainer.verl.merge import MERGED, hf_model_dir, verl_actor_dir

# The tiny model with every weight doubled (so the merged weights can only come from the
# shards), saved as verl's trainer saves global_step_3/actor: shards, no HF weights.
SAVE = """
import os, sys, torch, torch.distributed as dist
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=sys.argv[3], RANK="0", WORLD_SIZE="1")
dist.init_process_group("gloo")
from omegaconf import OmegaConf
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration
from verl.utils.checkpoint.fsdp_checkpoint_manager import FSDPCheckpointManager
model = Qwen2_5_VLForConditionalGeneration.from_pretrained(sys.argv[1])
with torch.no_grad():
    for weight in model.parameters():
        weight.mul_(2)
fully_shard(model, mesh=init_device_mesh("cpu", (1,), mesh_dim_names=("fsdp",)))
config = OmegaConf.create({"save_contents": ["model", "optimizer", "extra"],
                           "load_contents": ["model"], "async_save": False})
FSDPCheckpointManager(model, torch.optim.AdamW(model.parameters()), lr_scheduler=None,
                      processing_class=AutoProcessor.from_pretrained(sys.argv[1]),
                      checkpoint_config=config).save_checkpoint(sys.argv[2], global_step=3)
dist.destroy_process_group()
"""


def free_port() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


@pytest.fixture(scope="module")
def verl_checkpoint(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    step = tmp_path_factory.mktemp("verl-ckpt") / "global_step_3"
    subprocess.run([sys.executable, "-c", SAVE, str(model_dir), str(step / "actor"),
                    free_port()], check=True, capture_output=True, timeout=300)
    return step


def test_a_verl_checkpoint_is_merged_once_into_a_hugging_face_folder(verl_checkpoint,
                                                                     model_dir, monkeypatch):
    from transformers import Qwen2_5_VLForConditionalGeneration

    assert verl_actor_dir(verl_checkpoint) == verl_checkpoint / "actor"
    assert verl_actor_dir(model_dir) is None and hf_model_dir(model_dir) == model_dir
    merged = hf_model_dir(verl_checkpoint)
    assert merged == verl_checkpoint / "actor" / MERGED
    loaded = Qwen2_5_VLForConditionalGeneration.from_pretrained(merged, dtype=torch.float32)
    original = dict(Qwen2_5_VLForConditionalGeneration.from_pretrained(model_dir)
                    .named_parameters())
    for name, weight in loaded.named_parameters():  # verl's merger writes bfloat16
        torch.testing.assert_close(weight, 2 * original[name], atol=0.02, rtol=0.01)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("merged again"))
    assert hf_model_dir(verl_checkpoint / "actor") == merged


@pytest.mark.slow
def test_run_eval_scores_a_verl_checkpoint(verl_checkpoint, tmp_path):
    (tmp_path / "env_config.yaml").write_text(yaml.safe_dump(_env_config()))
    done = _run(["--device", "cpu", "--model", str(verl_checkpoint), "--n", "1", "--out", "out",
                 "--mode", "single", "--set", "max_new_tokens=8", "--cpu-threads", "1"],
                tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["run"]["model"] == str(verl_checkpoint / "actor" / MERGED)
