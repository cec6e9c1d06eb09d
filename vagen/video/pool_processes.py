"""Cold frame pools built in worker processes, so that decoding scales with cores.

Building a pool (decode + resize) holds the GIL for much of its time: PyAV decodes and
converts frame by frame from Python, PIL's resize is called once per frame, and decord's
own decoding thread competes with the caller's. A server's worker threads therefore hand
cold builds to `PoolProcesses` and wait on them without the GIL. The pool comes back
pickled (a copy of its frames, lost in the noise next to the decode: 4.3-4.6 s either way
for a 24 MB pool of a 40 s 640x360 video here) and goes into the caller's process-wide
cache, as if built there.

A decoding process that dies (a decoder crash on a corrupt file, the kernel's OOM killer)
breaks the executor for every build in flight; each of those builds is retried alone in a
fresh process, so only the video that kills it again fails, with a `VideoError` naming it,
and the server goes on. A decoding process whose parent dies (a server killed with
SIGKILL) exits within a second instead of lingering."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from types import TracebackType

from vagen.video.decode import VideoError
from vagen.video.pool import (
    FramePool,
    PoolBuilder,
    PoolConfig,
    build_pool,
    get_pool,
    is_cached,
    read_only,
    set_pool_builder,
)

# spawn, not fork: a server forks from a process whose threads may hold locks.
_CONTEXT = get_context("spawn")
PARENT_CHECK_S = 1.0  # how often a decoding process checks that its parent is alive


def _executor(processes: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(processes, mp_context=_CONTEXT, initializer=_exit_with_parent,
                               initargs=(os.getpid(),))


def _exit_with_parent(parent: int) -> None:
    """In a decoding process: a daemon thread that ends the process once `parent` is gone
    (the executor's pipes stay open in its other children, so they would wait forever)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


class PoolProcesses:
    """`processes` spawned processes (started on first use) building pools with `build`
    (a module-level function, as the processes import it; default `build_pool`)."""

    def __init__(self, processes: int, build: PoolBuilder = build_pool):
        if processes < 1:
            raise ValueError(f"processes must be >= 1, got {processes}")
        self.processes = processes
        self._build = build
        self._lock = threading.Lock()
        self._retry = threading.Lock()
        self._executor = _executor(processes)

    def build(self, path: str, config: PoolConfig) -> FramePool:
        """The pool of `path`, built in a worker process; its errors (VideoError for a bad
        video) are raised here as if the build had run in this thread."""
        executor = self._executor
        try:
            return read_only(executor.submit(self._build, path, config).result())
        except BrokenProcessPool:
            self._replace(executor)
        with self._retry, _executor(1) as alone:
            try:
                return read_only(alone.submit(self._build, path, config).result())
            except BrokenProcessPool:
                raise VideoError(f"{path}: the decoding process died on this video (a "
                                 "decoder crash, or killed for memory)") from None

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        """A fresh executor for later builds, once, however many builds saw `broken` fail."""
        with self._lock:
            if self._executor is broken:
                self._executor = _executor(self.processes)
        broken.shutdown(wait=False)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> PoolProcesses:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()


def use_pool_processes(processes: int) -> PoolProcesses | None:
    """Make `get_pool` build cold pools in `processes` worker processes from now on (0: in
    the calling thread again). Close the returned `PoolProcesses` after switching back."""
    if processes < 0:
        raise ValueError(f"processes must be >= 0, got {processes}")
    workers = PoolProcesses(processes) if processes else None
    set_pool_builder(workers.build if workers else None)
    return workers


def prefetch_pools(paths: Iterable[str | os.PathLike], config: PoolConfig | None = None,
                   workers: int = 2) -> int:
    """Build the pools of `paths` not cached yet in `workers` processes and keep them in the
    cache, as `get_pool` would have; returns how many were built. A video that fails to
    decode is left for `get_pool`, which raises its error when the video is used."""
    config = config or PoolConfig()
    todo = [path for path in dict.fromkeys(os.path.abspath(os.fspath(p)) for p in paths)
            if not is_cached(path, config) and os.path.isfile(path)]
    if not todo:
        return 0
    with PoolProcesses(min(workers, len(todo))) as processes, \
            ThreadPoolExecutor(processes.processes) as threads:
        return sum(threads.map(lambda path: _prefetch(path, config, processes), todo))


def _prefetch(path: str, config: PoolConfig, processes: PoolProcesses) -> bool:
    try:
        get_pool(path, config, processes.build)
    except VideoError:
        return False
    return True
