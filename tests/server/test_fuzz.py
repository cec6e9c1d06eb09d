"""Hostile input against a real env server on 127.0.0.1, as `vagen server` runs it (data roots
on): 2,000+ generated requests over every endpoint and codec - random bytes, truncated and
nested bodies, wrong types, huge and negative numbers, lone surrogates, FIFOs, devices,
folders and escaping paths as data - then concurrent steps of one env id. Every answer is
below 500, carries no traceback and no absolute server path, and an error answer applied
nothing. Seeded: a failure reproduces with the same seed."""

from __future__ import annotations

import json
import os
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from vagen.server.app import BackgroundServer
from vagen.server.service import EnvService
from vagen.server.wire import list_codecs, loads

SEED = 1234
REQUESTS = 2000
PATHS = ["/v1/envs", "/v1/reset", "/v1/step", "/v1/close"]


@pytest.fixture
def hostile(groups: dict[str, dict[str, Any]], tmp_path_factory) -> Iterator[dict[str, Any]]:
    """The server, its service, the folders a body must never show, and data paths a
    client may try: a FIFO, devices, a folder, files outside the roots, an escaping link."""
    spare = tmp_path_factory.mktemp("hostile")
    os.mkfifo(spare / "fifo.jsonl")
    (spare / "folder.jsonl").mkdir()
    (spare / "escape.jsonl").symlink_to("/etc/passwd")
    roots = sorted({str(Path(g["data"]).parent) for g in groups.values() if g.get("data")})
    service = EnvService(groups, workers=2, data_roots=[])
    server = BackgroundServer(service, threads=6)
    data_paths = [str(spare / "fifo.jsonl"), str(spare / "folder.jsonl"),
                  str(spare / "escape.jsonl"), "/dev/zero", "/dev/null", "/etc/passwd",
                  "/proc/self/environ", f"{roots[0]}/../../../etc/passwd", "x" * 5000,
                  "\udfff", ""]
    try:
        yield {"server": server, "service": service, "roots": roots, "data": data_paths}
    finally:
        server.stop()


def state(service: EnvService) -> dict[str, Any]:
    return {env_id: entry.steps for env_id, entry in service._envs.items()}


def surrogate_or(rng: random.Random, text: str) -> str:
    return text + "\udfff" if rng.random() < 0.5 else "\ud800" + text


def wrong_value(rng: random.Random) -> Any:
    return rng.choice([None, True, -1, -(2**70), 2**70, 1.5, float("1e308"), "", "x" * 300,
                       [], {}, [1, [2, [3]]], {"a": {"b": None}}, "\udfff", "0", "-3"])


def config(rng: random.Random, hostile: dict[str, Any]) -> dict[str, Any]:
    keys = ["max_turns", "pool_fps", "pool_max_frames", "max_pixels", "min_pixels",
            "initial_frames", "frames_per_turn", "rewards", "protocol", "split", "window",
            "max_new_tokens", "data", "nope"]
    picked = {}
    for key in rng.sample(keys, rng.randint(1, 4)):
        picked[key] = rng.choice(hostile["data"]) if key == "data" else rng.choice(
            [wrong_value(rng), 10**9, 0, -5, 31.0, 28 * 28 * 2000])
    return picked


def item(rng: random.Random, path: str, hostile: dict[str, Any], ids: list[str]) -> Any:
    """One env entry of a body, mostly wrong in one way."""
    env_id = rng.choice([*ids, "a", "b", wrong_value(rng), surrogate_or(rng, "c")])
    if path == "/v1/envs":
        entry = {"env_id": env_id, "group": rng.choice(
            ["frames", "qa-retrieve", "qa-query", "qa-single", "nope", wrong_value(rng)])}
        if rng.random() < 0.6:
            entry["config"] = config(rng, hostile)
        if rng.random() < 0.2:
            entry = {"env_id": env_id, "env": rng.choice(["video_qa", "nope", 7]),
                     "config": config(rng, hostile)}
        return entry
    if path == "/v1/reset":
        return {"env_id": env_id, "seed": rng.choice([0, 1, 3, wrong_value(rng)])}
    if path == "/v1/step":
        action = rng.choice(["<more/>", "<answer>A</answer>", "<query>" + "7" * 60000 +
                             "</query>", "<answer>" * 5000, surrogate_or(rng, "<more/>"),
                             wrong_value(rng), "<retrieve>3,1</retrieve>"])
        return {"env_id": env_id, "action": action,
                "step": rng.choice([0, 1, 2, 50, wrong_value(rng)])}
    return {"env_id": env_id}


def body(rng: random.Random, path: str, hostile: dict[str, Any], ids: list[str]) -> bytes:
    """A request body: random bytes, a truncated or over-nested one, or envs of `item`s."""
    kind = rng.random()
    if kind < 0.1:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 200)))
    if kind < 0.15:
        depth = rng.randint(20, 40)
        return ("{\"envs\": " + "[" * depth + "]" * depth + "}").encode()
    envs = [item(rng, path, hostile, ids) for _ in range(rng.randint(1, 3))]
    payload = {"envs": envs}
    if rng.random() < 0.4:
        payload["codec"] = rng.choice([*list_codecs(), "gif", 7])
    text = json.dumps(payload, ensure_ascii=rng.random() < 0.5)
    if kind < 0.25:
        text = text[:rng.randint(0, len(text))]
    try:
        return text.encode()
    except UnicodeEncodeError:  # a surrogate written raw: send the escaped form
        return json.dumps(payload).encode()


def check(response: requests.Response, sent: bytes, hostile: dict[str, Any]) -> None:
    """No 5xx (the answer's, or any env's within it), no traceback, no server path."""
    assert response.status_code < 500, response.content[:500]
    content = response.content
    if response.status_code == 200 and "results" in (answer := loads(
            content, response.headers["Content-Type"])):
        for result in answer["results"]:
            assert result.get("status", 200) < 500, result
    assert b"Traceback" not in content
    for root in hostile["roots"]:
        if root.encode() not in sent:
            assert root.encode() not in content, content[:500]


def test_generated_hostile_requests_get_answers_not_faults(hostile):
    rng = random.Random(SEED)
    url = hostile["server"].url
    service = hostile["service"]
    session = requests.Session()
    ids = ["a", "b"]
    for step in range(REQUESTS):
        path = rng.choice([*PATHS, "/health", "/v1/nothing"])
        before = state(service)
        if path == "/health":
            response = session.get(url + path, timeout=60)
            sent = b""
        else:
            sent = body(rng, path, hostile, ids)
            response = session.post(url + path, data=sent, timeout=60,
                                     headers={"Content-Type": "application/json"})
        check(response, sent, hostile)
        if response.status_code >= 400 and path != "/v1/close":
            assert state(service) == before, f"request {step} to {path} failed but applied"
        if rng.random() < 0.05:  # keep a few good envs to step and reset
            good = {"envs": [{"env_id": env_id, "group": "frames"} for env_id in ids]}
            session.post(url + "/v1/close", json={"envs": [{"env_id": i} for i in ids]})
            assert session.post(url + "/v1/envs", json=good).status_code == 200
            assert session.post(url + "/v1/reset", json={"envs": [
                {"env_id": env_id, "seed": 0} for env_id in ids]}).status_code == 200
    assert session.get(url + "/health", timeout=60).json()["status"] == "ok"


def test_health_answers_while_the_worst_action_is_parsed(hostile):
    """The largest action the server takes, all digits in a <query>, on an env whose
    protocol parses them: /health still answers meanwhile, and the step then does too."""
    url = hostile["server"].url
    assert requests.post(url + "/v1/envs", json={"envs": [
        {"env_id": "worst", "group": "qa-query"}]}).status_code == 200
    assert requests.post(url + "/v1/reset", json={"envs": [
        {"env_id": "worst", "seed": 0}]}).status_code == 200
    action = "<query>" + "9" * (65536 - len("<query></query>")) + "</query>"
    answers = []
    worker = threading.Thread(target=lambda: answers.append(requests.post(
        url + "/v1/step", json={"envs": [{"env_id": "worst", "action": action, "step": 0}]},
        timeout=120)))
    worker.start()
    health = requests.get(url + "/health", timeout=5)
    worker.join(timeout=120)
    assert health.status_code == 200
    assert answers and answers[0].status_code == 200


def test_concurrent_steps_of_one_env_apply_once(hostile):
    url = hostile["server"].url
    service = hostile["service"]
    requests.post(url + "/v1/close", json={"envs": [{"env_id": "race"}]})
    assert requests.post(url + "/v1/envs", json={"envs": [
        {"env_id": "race", "group": "frames"}]}).status_code == 200
    assert requests.post(url + "/v1/reset", json={"envs": [
        {"env_id": "race", "seed": 0}]}).status_code == 200
    statuses: list[int] = []

    def send() -> None:
        reply = requests.post(url + "/v1/step", json={"envs": [
            {"env_id": "race", "action": "<more/>", "step": 0}]}, timeout=60)
        answer = loads(reply.content, reply.headers["Content-Type"])
        statuses.append(answer["results"][0].get("status", 200))

    threads = [threading.Thread(target=send) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(statuses) == 16 and all(status < 500 for status in statuses)
    assert service._envs["race"].steps == 1  # applied once, the others replayed it
