"""`vagen server wait URL...`: block until env servers answer `GET /health`, so that shell
launchers (eval, the 7B run, the GPU smoke test) start their clients only when the servers
are up, and fail with the server's log named when one dies or never answers.

    vagen server --config env_config.yaml --port 5000 > server.log 2>&1 &
    vagen server wait http://127.0.0.1:5000 --pid $! --log server.log --timeout 120
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from vagen.server.app import TOKEN_ENV_VAR
from vagen.server.launch import ServerNotReady, wait_for_health


def _process_alive(pid: int) -> Callable[[], bool]:
    """Whether process `pid` still runs; an exited child its shell has not reaped yet (a
    zombie) counts as exited."""

    def alive() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # exists, owned by someone else
            return True
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True  # no /proc here: trust kill(0)
        return state != "Z"

    return alive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vagen server wait",
                                     description=__doc__.split("\n")[0].strip("`"))
    parser.add_argument("urls", nargs="+", help="server URLs, e.g. http://127.0.0.1:5000")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds to wait for each server (default 120)")
    parser.add_argument("--pid", type=int, help="the server's process id: fail at once if it "
                                                "exits (with one URL only)")
    parser.add_argument("--log", help="the server's log, named in the error")
    parser.add_argument("--token", default=os.environ.get(TOKEN_ENV_VAR),
                        help=f"bearer token of the servers (or ${TOKEN_ENV_VAR})")
    args = parser.parse_args(argv)
    if args.pid is not None and len(args.urls) != 1:
        parser.error("--pid names one server process; give one URL with it")
    where = f"; see {args.log}" if args.log else ""
    alive = _process_alive(args.pid) if args.pid is not None else None
    for url in args.urls:
        try:
            wait_for_health(url, args.timeout, args.token, alive, where)
        except ServerNotReady as err:
            print(f"vagen server wait: {err}", file=sys.stderr)
            return 1
        print(f"env server at {url} is up", flush=True)
    return 0
