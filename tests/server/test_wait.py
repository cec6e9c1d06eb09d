"""`vagen server wait`: what the shell launchers run before they start clients."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable

import pytest

from vagen.cli import main
from vagen.server.app import BackgroundServer


def _unused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_returns_once_every_server_answers(serve: Callable[..., BackgroundServer],
                                           capsys: pytest.CaptureFixture) -> None:
    servers = [serve(), serve()]
    assert main(["server", "wait", *(s.url for s in servers), "--timeout", "10"]) == 0
    out = capsys.readouterr().out
    assert all(f"env server at {s.url} is up" in out for s in servers)


def test_sends_the_token_a_guarded_server_needs(serve: Callable[..., BackgroundServer],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    url = serve(token="s3cret").url
    assert main(["server", "wait", url, "--timeout", "0.5", "--token", "wrong"]) == 1
    monkeypatch.setenv("VAGEN_SERVER_TOKEN", "s3cret")
    assert main(["server", "wait", url, "--timeout", "10"]) == 0


def test_times_out_naming_the_url_and_the_log(capsys: pytest.CaptureFixture) -> None:
    url = _unused_url()
    assert main(["server", "wait", url, "--timeout", "0.3", "--log", "srv.log"]) == 1
    assert (f"the env server at {url} did not answer /health within 0.3 s; see srv.log"
            in capsys.readouterr().err)


def test_fails_at_once_when_the_server_process_is_gone(capsys: pytest.CaptureFixture) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    url = _unused_url()
    assert main(["server", "wait", url, "--pid", str(gone.pid), "--timeout", "60"]) == 1
    assert f"the env server for {url} exited before answering /health" in capsys.readouterr().err


def test_pid_goes_with_one_url() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["server", "wait", _unused_url(), _unused_url(), "--pid", "1"])
    assert exit_info.value.code == 2
