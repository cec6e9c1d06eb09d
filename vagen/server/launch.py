"""`vagen server` as a child process on a free 127.0.0.1 port: what the quick start and the
benchmarks run beside their own process (a separate process, so env work never competes
with the policy for the GIL), and the /health wait that `vagen server wait` runs for the
shell launchers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import requests

LISTENING = "vagen server: listening on "  # the first line `vagen server` prints


@contextmanager
def server_subprocess(config: str | Path, workers: int = 2,
                      launcher: list[str] | None = None, env: dict[str, str] | None = None,
                      log: Path | None = None, health_timeout_s: float = 60.0,
                      flags: Sequence[str] = ()) -> Iterator[str]:
    """Start `<launcher> server --config CONFIG --port 0 --workers N [flags]` (launcher
    default: `python -m vagen`), wait until `/health` answers, yield its URL, terminate it
    on exit. Its stderr goes to `log` (or is dropped)."""
    command = [*(launcher or [sys.executable, "-m", "vagen"]), "server", "--config",
               str(config), "--port", "0", "--workers", str(workers), *flags]
    stderr = log.open("w") if log is not None else subprocess.DEVNULL
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True,
                               env={**os.environ, **(env or {})})
    where = f"; see {log}" if log is not None else ""
    try:
        line = process.stdout.readline()
        if not line.startswith(LISTENING):
            raise RuntimeError(f"the env server did not start: {line!r}{where}")
        url = line[len(LISTENING):].split()[0]
        wait_for_health(url, health_timeout_s, alive=lambda: process.poll() is None,
                        where=where)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        if log is not None:
            stderr.close()


class ServerNotReady(RuntimeError):
    """A server died or did not answer /health in time; the message says which and where."""


def wait_for_health(url: str, timeout_s: float, token: str | None = None,
                    alive: Callable[[], bool] | None = None, where: str = "") -> None:
    """Poll `url/health` until it answers 2xx. Raises `ServerNotReady` when `alive()` turns
    false (the server process exited) or after `timeout_s`; `where` ends the message (e.g.
    "; see server.log")."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if requests.get(f"{url.rstrip('/')}/health", headers=headers, timeout=2).ok:
                return
        except requests.ConnectionError:
            pass
        if alive is not None and not alive():
            raise ServerNotReady(f"the env server for {url} exited before answering /health"
                                 f"{where}")
        if time.monotonic() >= deadline:
            raise ServerNotReady(f"the env server at {url} did not answer /health within "
                                 f"{timeout_s:g} s{where}")
        time.sleep(0.2)
