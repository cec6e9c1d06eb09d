"""A checkpoint in verl's layout, written by verl's own `FSDPCheckpointManager` (FSDP2 on one
CPU rank, gloo): the tiny model with every weight doubled (so merged weights can only come
from the shards), saved as verl's trainer saves `global_step_3/actor`: shards, no HF
weights."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

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


def write_verl_checkpoint(model_dir: Path, root: Path) -> Path:
    """`root/global_step_3` holding `actor/` in verl's layout; returns that step folder."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    step = root / "global_step_3"
    subprocess.run([sys.executable, "-c", SAVE, str(model_dir), str(step / "actor"), port],
                   check=True, capture_output=True, timeout=300)
    return step
