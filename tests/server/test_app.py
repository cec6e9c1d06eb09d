"""The HTTP layer against a real waitress server on 127.0.0.1: batched endpoints, JSON
errors naming the field, fuzzed bodies, the bearer token, and `vagen server` itself."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import yaml

from tests.server.frames_env import start_server_process
from vagen.server.app import ServerLimits, main
from vagen.server.client import EnvClient
from vagen.server.launch import LISTENING
from vagen.server.service import EnvService
from vagen.server.wire import decode_observation, decode_step_result, get_codec, loads


def post(url: str, path: str, body, headers=None) -> requests.Response:
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return requests.post(url + path, data=data, headers=headers, timeout=30)


def answer(response: requests.Response):
    assert response.status_code == 200, response.text
    return loads(response.content, response.headers["Content-Type"])


def test_health_reports_envs_workers_and_cache(server):
    health = requests.get(server.url + "/health", timeout=10).json()
    assert health["status"] == "ok" and health["envs"] == 0 and health["workers"] == 2
    assert health["decoders"] == 0  # an in-process service decodes in its threads
    assert health["codecs"] == ["jpeg", "msgpack", "png-base64"]
    assert health["groups"] == ["frames", "qa-query", "qa-retrieve", "qa-single", "qa-timestamps"]
    assert set(health["pool_cache"]) >= {"entries", "bytes", "budget_bytes", "hits", "misses"}
    answer(post(server.url, "/v1/envs", {"envs": [{"env_id": "a", "group": "frames"}]}))
    assert requests.get(server.url + "/health", timeout=10).json()["envs"] == 1


@pytest.mark.parametrize("codec", ["msgpack", "jpeg", "png-base64"])
def test_batched_endpoints_over_http(server, codec):
    envs = [{"env_id": name, "group": "frames"} for name in ("a", "b", "c")]
    created = answer(post(server.url, "/v1/envs", {"envs": envs}))["results"]
    assert [r["env_id"] for r in created] == ["a", "b", "c"] and all(r["ok"] for r in created)
    seeds = [{"env_id": "a", "seed": 0}, {"env_id": "b", "seed": 4}, {"env_id": "c", "seed": 8}]
    reset = answer(post(server.url, "/v1/reset", {"codec": codec, "envs": seeds}))
    assert reset["codec"] == codec
    obs = [decode_observation(r["obs"], get_codec(codec)) for r in reset["results"]]
    assert [o.timestamps for o in obs] == [[0.0, 0.25], [1.0, 1.25], [2.0, 2.25]]
    assert all(o.frames[0].shape == (48, 64, 3) for o in obs)
    actions = [{"env_id": "a", "action": "<answer>0</answer>", "step": 0},
               {"env_id": "b", "action": "<more/>", "step": 0},
               {"env_id": "c", "action": "gibberish", "step": 0}]
    stepped = answer(post(server.url, "/v1/step", {"codec": codec, "envs": actions}))
    a, b, c = (decode_step_result(r["result"], get_codec(codec)) for r in stepped["results"])
    assert (a.terminated, a.reward, b.done, b.obs.timestamps) == (True, 1.0, False, [1.5, 1.75])
    assert (c.info["valid_action"], c.reward) == (False, -0.1)
    closed = answer(post(server.url, "/v1/close", {"codec": codec,
                                                   "envs": [{"env_id": "a"}, {"env_id": "x"}]}))
    assert closed["codec"] == codec
    assert [r["closed"] for r in closed["results"]] == [True, False]


def test_a_crashing_env_gets_its_error_in_its_slot(server):
    answer(post(server.url, "/v1/envs", {"envs": [{"env_id": "a", "group": "frames"},
                                                  {"env_id": "b", "group": "frames"}]}))
    answer(post(server.url, "/v1/reset", {"envs": [{"env_id": "a", "seed": 0},
                                                   {"env_id": "b", "seed": 0}]}))
    results = answer(post(server.url, "/v1/step", {"envs": [
        {"env_id": "a", "action": "<crash/>", "step": 0},
        {"env_id": "b", "action": "<more/>", "step": 0}]}))["results"]
    assert results[0] == {"env_id": "a", "ok": False, "status": 500, "field": None,
                          "error": "RuntimeError: the test env crashes on purpose"}
    assert results[1]["ok"] and results[1]["result"]["info"]["turn"] == 1


BAD_REQUESTS = [
    ("/v1/reset", b"{not json", 400, "body"),
    ("/v1/reset", b"\xff\xfe", 400, "body"),
    ("/v1/reset", [1, 2], 400, "body"),
    ("/v1/reset", {}, 400, "envs"),
    ("/v1/reset", {"envs": []}, 400, "envs"),
    ("/v1/reset", {"envs": ["a"]}, 400, "envs[0]"),
    ("/v1/reset", {"envs": [{"env_id": 7, "seed": 0}]}, 400, "envs[0].env_id"),
    ("/v1/reset", {"envs": [{"env_id": "", "seed": 0}]}, 400, "envs[0].env_id"),
    ("/v1/reset", {"envs": [{"env_id": "a", "seed": "3"}]}, 400, "envs[0].seed"),
    ("/v1/reset", {"envs": [{"env_id": "a", "seed": True}]}, 400, "envs[0].seed"),
    ("/v1/reset", {"envs": [{"env_id": "a", "seed": 2**64}]}, 400, "envs[0].seed"),
    ("/v1/reset", {"envs": [{"env_id": "a", "seed": 1.5}]}, 400, "envs[0].seed"),
    ("/v1/reset", {"envs": [{"env_id": "nobody", "seed": 0}]}, 404, "envs[0].env_id"),
    ("/v1/reset", {"codec": "gif", "envs": [{"env_id": "a", "seed": 0}]}, 400, "codec"),
    ("/v1/reset", {"codec": 5, "envs": [{"env_id": "a", "seed": 0}]}, 400, "codec"),
    ("/v1/step", {"envs": [{"env_id": "a", "action": None, "step": 0}]}, 400, "envs[0].action"),
    ("/v1/step", {"envs": [{"env_id": "a", "action": "x", "step": -1}]}, 400, "envs[0].step"),
    ("/v1/step", {"envs": [{"env_id": "a", "action": "x"}]}, 400, "envs[0].step"),
    ("/v1/step", {"envs": [{"env_id": "a", "action": "x" * 70_000, "step": 0}]}, 413,
     "envs[0].action"),
    ("/v1/step", {"envs": [{"env_id": "a" * 300, "action": "x", "step": 0}]}, 413,
     "envs[0].env_id"),
    ("/v1/envs", {"envs": [{"env_id": "b"}]}, 400, "envs[0].env"),
    ("/v1/envs", {"envs": [{"env_id": "b", "group": "nope"}]}, 404, "envs[0].group"),
    ("/v1/envs", {"envs": [{"env_id": "b", "group": "frames", "config": []}]}, 400,
     "envs[0].config"),
    ("/v1/close", {"envs": [{"env_id": "a"}, {"env_id": "a"}]}, 400, "envs[1].env_id"),
    ("/v1/nothing", {}, 404, None),
    ("/v1/reset", b"[" * 100_000, 400, "body"),
    ("/v1/reset", {"envs": [{"env_id": "a", "seed": 0, "x": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[
        ]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}]}, 400, "body.envs[0].x" + "[0]" * 30),
    ("/v1/step", b'{"envs": [{"env_id": "a", "action": "\\udfff", "step": 0}]}', 400,
     "body.envs[0].action"),
    ("/v1/envs", b'{"envs": [{"env_id": "\\udfff", "group": "frames"}]}', 400,
     "body.envs[0].env_id"),
]


@pytest.mark.parametrize(("path", "body", "status", "field"), BAD_REQUESTS)
def test_bad_requests_get_json_errors_naming_the_field(server, path, body, status, field):
    answer(post(server.url, "/v1/envs", {"envs": [{"env_id": "a", "group": "frames"}]}))
    response = post(server.url, path, body)
    assert response.status_code == status
    error = response.json()
    assert error["field"] == field and isinstance(error["error"], str) and error["error"]


def test_a_refused_surrogate_applied_nothing(server):
    """The lone surrogate is refused before the step runs: the env is still at step 0."""
    answer(post(server.url, "/v1/envs", {"envs": [{"env_id": "a", "group": "frames"}]}))
    answer(post(server.url, "/v1/reset", {"envs": [{"env_id": "a", "seed": 0}]}))
    bad = b'{"envs": [{"env_id": "a", "action": "<more/>\\udfff", "step": 0}]}'
    assert post(server.url, "/v1/step", bad).status_code == 400
    assert server.service._envs["a"].steps == 0


def test_oversized_bodies_and_wrong_methods_get_json_errors(groups):
    from vagen.server.app import BackgroundServer

    service = EnvService(groups)
    server = BackgroundServer(service, limits=ServerLimits(max_body_bytes=1000))
    try:
        huge = post(server.url, "/v1/reset", {"envs": [], "pad": "x" * 5000})
        assert huge.status_code == 413 and "Too Large" in huge.json()["error"]
        wrong = requests.get(server.url + "/v1/step", timeout=10)
        assert wrong.status_code == 405 and wrong.json()["field"] is None
    finally:
        server.stop()


def _mutate(rng: random.Random, body: dict) -> bytes:
    """A random corruption of a valid step body: a wrong type, a dropped key, junk bytes."""
    body = json.loads(json.dumps(body))
    item = body["envs"][rng.randrange(len(body["envs"]))]
    kind = rng.randrange(5)
    junk = rng.choice([None, 3.5, -1, [], {}, "", "x" * rng.randrange(1, 80_000), True, 2**70])
    if kind == 0:
        item[rng.choice(["env_id", "action", "step"])] = junk
    elif kind == 1:
        del item[rng.choice(["env_id", "action", "step"])]
    elif kind == 2:
        body[rng.choice(["envs", "codec"])] = junk
    elif kind == 3:
        text = json.dumps(body)
        cut = rng.randrange(len(text))
        return (text[:cut] + rng.choice(["", "}", "\x00", "\ud800"]) + text[cut + 1:]).encode(
            "utf-8", "surrogatepass")
    else:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
    return json.dumps(body).encode()


def test_fuzzed_actions_and_bodies_never_hurt_the_server(server):
    """1,000 random action texts on video_qa envs of every protocol are penalised turns;
    corrupted bodies get 4xx JSON errors; the server stays healthy."""
    rng = random.Random(0)
    protocols = ("retrieve", "query", "timestamps", "single")
    ids = [f"e{i}" for i in range(25)]
    answer(post(server.url, "/v1/envs", {"envs": [
        {"env_id": env_id, "group": f"qa-{protocols[i % 4]}"} for i, env_id in enumerate(ids)]}))
    alphabet = "<>/answermorequeryframesretrieve0123456789,. \n\t{}\"'\\ü中😀\x00"
    steps = dict.fromkeys(ids, None)
    fuzzed, statuses = 0, set()
    for round_ in range(40):
        ended = [env_id for env_id, step in steps.items() if step is None]
        answer(post(server.url, "/v1/reset",
                    {"envs": [{"env_id": env_id, "seed": round_} for env_id in ended]}))
        steps.update(dict.fromkeys(ended, 0))
        actions = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 300)))
                   for _ in ids]
        body = {"envs": [{"env_id": env_id, "action": action, "step": steps[env_id]}
                         for env_id, action in zip(ids, actions, strict=True)]}
        results = answer(post(server.url, "/v1/step", body))["results"]
        for env_id, result in zip(ids, results, strict=True):
            assert result["ok"], result
            turn = result["result"]
            assert turn["info"]["valid_action"] is False and turn["reward"] == -0.1
            assert not turn["terminated"]
            steps[env_id] = None if turn["truncated"] else steps[env_id] + 1
        fuzzed += len(ids)
        for _ in range(5):
            response = post(server.url, "/v1/step", _mutate(rng, body))
            statuses.add(response.status_code)
            if response.status_code != 200:
                assert 400 <= response.status_code < 500, response.text
                assert set(response.json()) == {"error", "field"}
    assert fuzzed >= 1000 and 400 in statuses
    health = requests.get(server.url + "/health", timeout=10)
    assert health.status_code == 200 and health.json()["envs"] == len(ids)


def test_the_token_is_required_when_set(serve):
    server = serve(token="s3cret")
    body = {"envs": [{"env_id": "a", "group": "frames"}]}
    for headers in (None, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
        response = post(server.url, "/v1/envs", body, headers)
        assert response.status_code == 401
        assert response.json() == {"error": "missing or wrong bearer token",
                                    "field": "Authorization"}
    assert requests.get(server.url + "/health", timeout=10).status_code == 401
    good = {"Authorization": "Bearer s3cret"}
    assert answer(post(server.url, "/v1/envs", body, good))["results"][0]["ok"]
    assert server.service.__len__() == 1


def test_main_refuses_a_public_host_without_a_token(capsys, monkeypatch):
    monkeypatch.delenv("VAGEN_SERVER_TOKEN", raising=False)
    with pytest.raises(SystemExit) as exit_:
        main(["--host", "0.0.0.0", "--port", "0"])
    assert exit_.value.code == 2
    assert "--host 0.0.0.0 exposes the server" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--host", "0.0.0.0", "--token", "t"],
                                  ["--host", "127.0.0.1", "--token", "t"]])
def test_debug_is_refused_off_loopback_and_with_a_token(args, capsys, monkeypatch):
    monkeypatch.delenv("VAGEN_SERVER_TOKEN", raising=False)
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--debug", "--port", "0"])
    assert exit_.value.code == 2
    assert "--debug serves Flask's debugger" in capsys.readouterr().err


def test_vagen_server_command_serves_until_terminated(tmp_path, video_path):
    process, url = start_server_process(tmp_path, video_path, "--workers", "1")
    try:
        assert requests.get(url + "/health", timeout=10).json()["groups"] == ["frames"]
        created = answer(post(url, "/v1/envs", {"envs": [{"env_id": "a", "group": "frames"}]}))
        assert created["results"][0]["ok"]
        frames = answer(post(url, "/v1/reset", {"envs": [{"env_id": "a", "seed": 3}]}))
        obs = decode_observation(frames["results"][0]["obs"], get_codec("msgpack"))
        assert len(obs.frames) == 2 and np.asarray(obs.frames[0]).dtype == np.uint8
    finally:
        process.terminate()
        assert process.wait(timeout=20) == 0  # SIGTERM closes the envs and exits cleanly


def _live_children(pid: int) -> set[int]:
    """Processes (not zombies) whose parent is `pid`, read from /proc."""
    children = set()
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        state, parent = stat.rsplit(")", 1)[1].split()[:2]
        if int(parent) == pid and state != "Z":
            children.add(int(entry.name))
    return children


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_decoding_processes_do_not_outlive_a_killed_server(tmp_path, groups):
    """`vagen server --workers 2` decodes in 2 processes by default; killed with SIGKILL
    (as the OOM killer would), it must not leave them running."""
    config = tmp_path / "env_config.yaml"
    config.write_text(yaml.safe_dump([groups["qa-retrieve"]]))
    process = subprocess.Popen([sys.executable, "-m", "vagen", "server", "--config",
                                str(config), "--port", "0", "--workers", "2"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = process.stdout.readline()[len(LISTENING):].split()[0]
        with EnvClient(url) as client:
            client.create({"a": {"group": "qa-retrieve"}, "b": {"group": "qa-retrieve"}})
            client.reset({"a": 0, "b": 1})
            assert requests.get(url + "/health", timeout=10).json()["decoders"] == 2
        decoders = _live_children(process.pid)
        assert decoders  # the decoding processes (and multiprocessing's resource tracker)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in decoders) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in decoders if _alive(pid)]


def test_main_refuses_a_bad_workers_or_decoders_count(capsys):
    for flags, message in ((["--workers", "0"], "--workers must be >= 1"),
                           (["--decoders", "-1"], "--decoders must be >= 0")):
        with pytest.raises(SystemExit) as exit_:
            main([*flags, "--port", "0"])
        assert exit_.value.code == 2 and message in capsys.readouterr().err
