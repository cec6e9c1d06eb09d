"""Cold frame pools built in worker processes, so that decoding scales with cores.

Building a pool (decode + resize) holds the GIL for much of its time: PyAV decodes and
converts frame by frame from Python, PIL's resize is called once per frame, and decord's
own decoding thread competes with the caller's. A server's worker threads therefore hand
cold builds to `PoolProcesses` and wait on them without the GIL. Each decoding process
has a pipe of its own and runs one build at a time: a thread takes an idle process, sends
it the video, and blocks on the answer (two hand-offs a build; `ProcessPoolExecutor`'s
queue threads cost ~10% more throughput on small videos). The pool comes back pickled (a
copy of its frames, lost in the noise next to the decode: 4.3-4.6 s either way for a 24 MB
pool of a 40 s 640x360 video here) and goes into the caller's process-wide cache, as if
built there.

A decoding process that dies (a decoder crash on a corrupt file, the kernel's OOM killer)
was building one video only: that build fails with a `VideoError` naming it, a fresh
process takes its place, and the server goes on. A decoding process whose parent
dies (a server killed with SIGKILL) exits within a second instead of lingering."""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing import get_context
from multiprocessing.connection import Connection
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


def _serve(conn: Connection, build: PoolBuilder, parent: int) -> None:
    """A decoding process: build the pool of each `(path, config)` received and send back
    `(True, pool)` or `(False, error)`, until the pipe closes or `parent` is gone (the
    watch thread: a parent killed with SIGKILL closes no pipe of ours)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
    while True:
        try:
            path, config = conn.recv()
        except EOFError:
            return
        try:
            answer = (True, build(path, config))
        except Exception as err:  # raised again in the caller's thread
            answer = (False, err)
        try:
            conn.send(answer)
        except Exception as err:  # an error that does not pickle
            conn.send((False, RuntimeError(f"{type(answer[1]).__name__}: {answer[1]} "
                                           f"(not picklable: {err})")))


class _Decoder:
    """One spawned decoding process and our end of its pipe."""

    def __init__(self, build: PoolBuilder):
        self.conn, theirs = _CONTEXT.Pipe()
        self.process = _CONTEXT.Process(target=_serve, args=(theirs, build, os.getpid()),
                                        name="vagen-decoder", daemon=True)
        self.process.start()
        theirs.close()

    def build(self, path: str, config: PoolConfig) -> FramePool:
        """Raises EOFError or OSError when the process died meanwhile."""
        self.conn.send((path, config))
        ok, value = self.conn.recv()
        if not ok:
            raise value
        return read_only(value)

    def close(self) -> None:
        self.conn.close()  # the process sees EOF and returns
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


class PoolProcesses:
    """Up to `processes` decoding processes (each started when first needed) building
    pools with `build` (a module-level function, as the processes import it; default
    `build_pool`). Thread-safe: a build waits for an idle process."""

    def __init__(self, processes: int, build: PoolBuilder = build_pool):
        if processes < 1:
            raise ValueError(f"processes must be >= 1, got {processes}")
        self.processes = processes
        self._build = build
        self._lock = threading.Lock()
        self._idle: queue.SimpleQueue[_Decoder] = queue.SimpleQueue()
        self._decoders: list[_Decoder] = []

    def build(self, path: str, config: PoolConfig) -> FramePool:
        """The pool of `path`, built in a decoding process; its errors (VideoError for a
        bad video) are raised here as if the build had run in this thread."""
        decoder = self._take()
        try:
            pool = decoder.build(path, config)
        except (EOFError, OSError):
            self._replace(decoder)
            raise VideoError(f"{path}: the decoding process died on this video (a decoder "
                             "crash, or killed for memory)") from None
        except BaseException:
            self._idle.put(decoder)
            raise
        self._idle.put(decoder)
        return pool

    def _take(self) -> _Decoder:
        """An idle decoding process; a new one while fewer than `processes` run."""
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if len(self._decoders) < self.processes:
                decoder = _Decoder(self._build)
                self._decoders.append(decoder)
                return decoder
        return self._idle.get()

    def _replace(self, dead: _Decoder) -> None:
        """A fresh process in place of a dead one, idle at once for a build waiting on one."""
        dead.close()
        with self._lock:
            self._decoders.remove(dead)
            fresh = _Decoder(self._build)
            self._decoders.append(fresh)
        self._idle.put(fresh)

    def close(self) -> None:
        """Stop every decoding process (call when no build is running)."""
        with self._lock:
            decoders, self._decoders = self._decoders, []
        for decoder in decoders:
            decoder.close()

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
            if not is_cached(path, config)]
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
