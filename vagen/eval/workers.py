"""Data-parallel evaluation: one spawned process per GPU, each pinned to its GPU with
`CUDA_VISIBLE_DEVICES` before anything touches CUDA, playing its shard of the rows with its
own policy engine and sending each result back to the parent, which alone writes
`results.jsonl` and drives the progress bar. On `--device cpu` the workers are plain CPU
processes (that is how the sharding is tested)."""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_module
import traceback
from collections.abc import Callable
from typing import Any

from vagen.eval.rows import EvalRow

Emit = Callable[[dict[str, Any]], None]
# play(config, rows, server_url, emit): play rows and emit one result per row.
Play = Callable[[Any, list[EvalRow], str, Emit], None]
POLL_S = 1.0


class WorkerError(RuntimeError):
    """A worker failed; the message carries its traceback or exit code."""


def visible_gpus(count: int) -> list[str]:
    """The GPU ids the `count` workers pin: the first `count` of `CUDA_VISIBLE_DEVICES` when
    it is set (so `CUDA_VISIBLE_DEVICES=4,5 --gpus 2` uses GPUs 4 and 5), else 0..count-1."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [v.strip() for v in visible.split(",") if v.strip()] if visible else None
    if ids is None:
        return [str(k) for k in range(count)]
    if len(ids) < count:
        raise WorkerError(f"--gpus {count} but CUDA_VISIBLE_DEVICES={visible} lists "
                          f"{len(ids)}; lower --gpus or list more GPUs")
    return ids[:count]


def run_workers(play: Play, config: Any, shards: list[list[EvalRow]], server_url: str,
                emit: Emit, device: str, cpu_threads: int | None = None) -> None:
    """Play each shard in its own process; `emit` every result as it arrives. A failing
    worker stops the others and raises with its traceback. CPU workers use `cpu_threads`
    torch threads each (default: the cores split evenly)."""
    gpus = visible_gpus(len(shards)) if device == "cuda" else [None] * len(shards)
    threads = cpu_threads or max(1, (os.cpu_count() or 1) // len(shards))
    context = mp.get_context("spawn")
    results = context.Queue()
    workers = [context.Process(target=_worker, name=f"vagen-eval-{k}",
                               args=(play, config, shard, server_url, results, gpu, threads))
               for k, (shard, gpu) in enumerate(zip(shards, gpus, strict=True))]
    for worker in workers:
        worker.start()
    try:
        _collect(results, workers, emit)
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
            worker.join()


def _collect(results: Any, workers: list[Any], emit: Emit) -> None:
    running = {worker.name for worker in workers}
    while running:
        try:
            kind, name, payload = results.get(timeout=POLL_S)
        except queue_module.Empty:
            # A worker that ends normally has queued "done" (or "error") before exiting.
            dead = [w for w in workers if w.name in running and w.exitcode not in (None, 0)]
            if dead:
                raise WorkerError(f"worker {dead[0].name} exited with code {dead[0].exitcode} "
                                  "before finishing its rows") from None
            continue
        if kind == "result":
            emit(payload)
        elif kind == "error":
            raise WorkerError(f"worker {name} failed:\n{payload}")
        else:
            running.discard(name)


def _worker(play: Play, config: Any, rows: list[EvalRow], server_url: str, results: Any,
            gpu: str | None, threads: int) -> None:
    name = mp.current_process().name
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    else:
        import torch

        torch.set_num_threads(threads)
    try:
        play(config, rows, server_url, lambda result: results.put(("result", name, result)))
        results.put(("done", name, None))
    except BaseException:
        results.put(("error", name, traceback.format_exc()))
