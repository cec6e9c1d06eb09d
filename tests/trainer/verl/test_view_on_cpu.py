"""A verl run keeps trajectories for `vagen view`: the real agent loop sends each played
episode (scripted LLM, real env server) as `vagen_view`, and verl's advantage step in the
trainer process writes the due steps' rows to trajectories.jsonl, numbered from the newest
checkpoint's step."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import torch
from tensordict import TensorDict
from verl.protocol import DataProto

from tests.trainer.verl.scripted_llm import ScriptedServerManager
from tests.trainer.verl.test_agent_loop_on_cpu import SCRIPT, make_loop
from tests.view.test_build import page_data
from vagen.trainer.logger import read_metrics
from vagen.trainer.verl.advantages import compute_advantage, register_estimators
from vagen.trainer.verl.view import LATEST_STEP_FILE, VIEW_FIELD, VerlTrajectoryLog
from vagen.view import build_view


def step_batch(materials: list[str]) -> DataProto:
    """A step's batch as verl's trainer holds it when it computes advantages."""
    rows = len(materials)
    views = np.empty(rows, dtype=object)
    views[:] = materials
    tensors = {"token_level_rewards": torch.zeros(rows, 4),
               "response_mask": torch.ones(rows, 4, dtype=torch.long)}
    return DataProto(batch=TensorDict(tensors, batch_size=rows),
                     non_tensor_batch={"uid": np.array(["p"] * rows, dtype=object),
                                       VIEW_FIELD: views})


def test_each_step_keeps_its_played_trajectories_from_the_resumed_step(
        verl_config, processor, env_row, env_server, tmp_path):
    loop = make_loop(verl_config, ScriptedServerManager(processor.tokenizer, SCRIPT), processor)
    output = asyncio.run(loop.run({}, **env_row(seed=0)))
    material = output.extra_fields[VIEW_FIELD]
    played = json.loads(material)
    assert [turn["response"] for turn in played["turns"]] == SCRIPT
    assert [len(view["times"]) for view in played["shown"]][:3] == [4, 0, 3]  # opening, invalid

    register_estimators()
    (tmp_path / LATEST_STEP_FILE).write_text("6\n")  # resumed from global_step_6
    log = VerlTrajectoryLog({"view": {"every": 2, "per_step": 2}}, tmp_path)
    for _ in range(2):  # steps 7 (not due) and 8
        compute_advantage(step_batch([material, "", material]), "grpo",
                          config={"norm_adv_by_std_in_grpo": True}, view_log=log)
    kept = read_metrics(tmp_path / "trajectories.jsonl")
    assert [row["step"] for row in kept] == [8, 8]  # the dropped row ("") is left out
    assert kept[0]["turns"] == 3 and kept[0]["correct"] is True
    assert kept[0]["steps"][1]["requested"]  # the retrieve turn's span
    episodes = page_data(build_view(tmp_path))["episodes"]
    assert [len(view) for view in episodes[0]["views"]] == [4, 0, 3]
