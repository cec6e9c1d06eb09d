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
from dataclasses import dataclass, field
from pathlib import Path

from vagen.config import add_flags, flag_values
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


@dataclass
class WaitConfig:
    """`vagen server wait`'s flags (`vagen.config.add_flags`); the URLs are positional."""

    timeout: float = field(default=120.0, metadata={
        "help": "seconds to wait for each server"})
    pid: int | None = field(default=None, metadata={
        "help": "the server's process id: fail at once if it exits (with one URL only)"})
    log: str | None = field(default=None, metadata={"help": "the server's log, named in the "
                                                            "error"})
    token: str | None = field(default=None, metadata={
        "help": f"bearer token of the servers (default: ${TOKEN_ENV_VAR})"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vagen server wait",
                                     description=__doc__.split("\n")[0].strip("`"))
    parser.add_argument("urls", nargs="+", help="server URLs, e.g. http://127.0.0.1:5000")
    add_flags(parser, WaitConfig)
    parsed = parser.parse_args(argv)
    args = WaitConfig(**flag_values(parsed, WaitConfig))
    args.token = args.token or os.environ.get(TOKEN_ENV_VAR)
    urls = parsed.urls
    if args.pid is not None and len(urls) != 1:
        parser.error("--pid names one server process; give one URL with it")
    where = f"; see {args.log}" if args.log else ""
    alive = _process_alive(args.pid) if args.pid is not None else None
    for url in urls:
        try:
            wait_for_health(url, args.timeout, args.token, alive, where)
        except ServerNotReady as err:
            print(f"vagen server wait: {err}", file=sys.stderr)
            return 1
        print(f"env server at {url} is up", flush=True)
    return 0
