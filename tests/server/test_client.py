"""The client against real servers: batching, sharding, retries that never step twice,
errors naming the URL, the bearer token, and remote envs that pass `check_env`."""

import os
import signal
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from tests.server.frames_env import CRASH_ACTION, start_server_process
from vagen.env.base import StepResult
from vagen.env.checker import check_env
from vagen.env.registry import make_env
from vagen.env.video_qa.protocols import BUILT_IN
from vagen.server.client import EnvClient, EnvServerError, RemoteEnv
from vagen.server.wire import to_plain

FRAMES = {"group": "frames"}
MALFORMED = "<answer>unclosed"


def assert_same_step(remote: StepResult, local: StepResult) -> None:
    assert remote.obs.text == local.obs.text
    assert len(remote.obs.frames) == len(local.obs.frames)
    for a, b in zip(remote.obs.frames, local.obs.frames, strict=True):
        assert np.array_equal(a, b)
    assert remote.obs.timestamps == list(local.obs.timestamps)
    assert remote.obs.video_ids == list(local.obs.video_ids)
    assert (remote.reward, remote.terminated, remote.truncated) == (
        local.reward, local.terminated, local.truncated)
    assert remote.info == to_plain(local.info)


def test_batched_calls_through_the_client(server):
    with EnvClient(server.url) as client:
        prompts = client.create({"a": FRAMES, "b": FRAMES})
        assert set(prompts) == {"a", "b"} and client.system_prompt("a") == prompts["a"]
        obs = client.reset({"a": 0, "b": 7})
        assert obs["a"].timestamps == [0.0, 0.25] and obs["b"].timestamps == [1.75, 2.0]
        results = client.step({"a": "<more/>", "b": "<answer>7</answer>"})
        assert results["a"].info["turn"] == 1 and results["b"].terminated
        assert client.step({"a": "<more/>"})["a"].info["turn"] == 2
        client.close(["b"])
        client.close(["b"])  # harmless twice
        assert len(server.service) == 1
    assert len(server.service) == 0  # leaving the block closed the rest


@pytest.mark.parametrize("protocol", BUILT_IN)
def test_each_protocol_over_http_matches_the_local_env(server, groups, protocol):
    """Oracle episodes and malformed-action episodes give, through the server, exactly
    what the same env gives in process."""
    group = f"qa-{protocol}"
    seeds = {f"{protocol}-{seed}": seed for seed in range(4)}
    local = {env_id: make_env("video_qa", groups[group]) for env_id in seeds}
    with EnvClient(server.url) as client:
        client.create({env_id: {"group": group} for env_id in seeds})
        for policy in ("oracle", "malformed"):
            remote_obs = client.reset(seeds)
            for env_id, seed in seeds.items():
                obs = local[env_id].reset(seed)
                assert remote_obs[env_id].text == obs.text
                assert all(np.array_equal(a, b) for a, b in
                           zip(remote_obs[env_id].frames, obs.frames, strict=True))
            live, ended = dict(seeds), {}
            while live:
                actions = {env_id: local[env_id].oracle_action() if policy == "oracle"
                           else MALFORMED for env_id in live}
                remote = client.step(actions)
                for env_id, action in actions.items():
                    expected = local[env_id].step(action)
                    assert_same_step(remote[env_id], expected)
                    if expected.done:
                        live.pop(env_id)
                        ended[env_id] = expected
            if policy == "oracle":
                assert all(r.terminated and r.info["correct"] for r in ended.values())
            else:
                assert all(r.truncated and not r.info["valid_action"] and r.reward < 0
                           for r in ended.values())


@pytest.mark.parametrize("group", ["frames", *(f"qa-{p}" for p in BUILT_IN)])
def test_check_env_passes_in_process_and_through_the_client(server, groups, group):
    check_env(make_env(groups[group]["env"], groups[group]), seed=1)
    with EnvClient(server.url) as client:
        check_env(RemoteEnv(client, f"check-{group}", {"group": group}), seed=1)
        assert len(server.service) == 0  # check_env closed it (twice, harmlessly)


def test_two_servers_return_what_one_returns(serve):
    one, first, second = serve(), serve(), serve()
    seeds = {f"env{i}": i for i in range(6)}
    specs = dict.fromkeys(seeds, {"group": "qa-retrieve"})
    runs = []
    for urls in ([one.url], [first.url, second.url]):
        with EnvClient(urls) as client:
            client.create(specs)
            obs = client.reset(seeds)
            steps = client.step({env_id: "<retrieve>2,9</retrieve>" for env_id in seeds})
            answers = client.step({env_id: "<answer>A</answer>" for env_id in seeds})
            placement = {env_id: client.server_of(env_id) for env_id in seeds}
            runs.append((obs, steps, answers))
    assert len(first.service) == len(second.service) == 0
    assert sorted(placement.values()) == sorted([first.url] * 3 + [second.url] * 3)
    (obs_1, steps_1, answers_1), (obs_2, steps_2, answers_2) = runs
    for env_id in seeds:
        assert obs_1[env_id].text == obs_2[env_id].text
        assert_same_step(steps_2[env_id], steps_1[env_id])
        assert_same_step(answers_2[env_id], answers_1[env_id])


def test_one_client_serves_many_threads_with_their_own_envs(serve):
    first, second = serve(), serve()

    def episode(i: int) -> tuple[int, float]:
        env_id = f"thread-{i}"
        client.create({env_id: FRAMES})
        start = client.reset({env_id: i})[env_id].timestamps[0]
        turns = [client.step({env_id: "<more/>"})[env_id].info["turn"] for _ in range(2)]
        client.close([env_id])
        return turns[-1], start

    with EnvClient([first.url, second.url]) as client, ThreadPoolExecutor(8) as pool:
        results = list(pool.map(episode, range(16)))
    assert results == [(2, (i % 12) / 4) for i in range(16)]
    assert len(first.service) == len(second.service) == 0


class LoseFirstResponse(requests.adapters.HTTPAdapter):
    """The server handles the request, then the answer is lost on the way back once."""

    def __init__(self, path: str):
        super().__init__()
        self.path, self.lost = path, 0

    def send(self, request, **kwargs):
        response = super().send(request, **kwargs)
        if request.path_url == self.path and not self.lost:
            self.lost += 1
            raise requests.ConnectionError("connection reset while reading the answer")
        return response


def test_a_step_sent_twice_advances_the_env_once(server):
    with EnvClient(server.url, backoff_s=0.01) as client:
        client.create({"a": FRAMES})
        client.reset({"a": 0})
        lossy = LoseFirstResponse("/v1/step")
        client._session.mount("http://", lossy)
        first = client.step({"a": "<more/>"})["a"]
        assert lossy.lost == 1  # the first answer was lost and the step resent
        assert first.info["turn"] == 1 and first.obs.timestamps == [0.5, 0.75]
        assert client.step({"a": "<more/>"})["a"].info["turn"] == 2
        assert server.service._envs["a"].env.turn == 2


def test_env_errors_name_the_url_and_env_and_keep_the_rest(server):
    with EnvClient(server.url) as client:
        client.create({"a": FRAMES, "b": FRAMES})
        client.reset({"a": 0, "b": 0})
        with pytest.raises(EnvServerError) as err:
            client.step({"a": CRASH_ACTION, "b": "<more/>"})
        message = str(err.value)
        assert message.startswith(f"{server.url}/v1/step: env 'a' failed (500")
        assert "the test env crashes on purpose" in message and err.value.env_ids == ["a"]
        assert err.value.partial["b"]["result"]["info"]["turn"] == 1
        # b's step counted, a's did not: both continue with the right step index
        results = client.step({"a": "<more/>", "b": "<more/>"})
        assert (results["a"].info["turn"], results["b"].info["turn"]) == (1, 2)
        with pytest.raises(KeyError, match="'zzz' was not created by this client"):
            client.reset({"zzz": 0})


def test_a_killed_server_fails_its_envs_with_its_url_and_never_fails_over(
        tmp_path, video_path, server):
    process, doomed = start_server_process(tmp_path, video_path)
    try:
        with EnvClient([doomed, server.url], retries=2, backoff_s=0.01) as client:
            client.create({"a": FRAMES, "b": FRAMES, "c": FRAMES, "d": FRAMES})
            on_doomed = sorted(e for e in "abcd" if client.server_of(e) == doomed)
            assert on_doomed == ["a", "c"]
            client.reset({e: 0 for e in "abcd"})
            client.step({e: "<more/>" for e in "abcd"})
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
            with pytest.raises(EnvServerError) as err:
                client.step({e: "<more/>" for e in "abcd"})
            assert str(err.value).startswith(f"{doomed}/v1/step: no answer after 3 attempts "
                                             "for envs 'a', 'c': ConnectionError")
            assert err.value.url == doomed and err.value.env_ids == ["a", "c"]
            assert {e: r["result"]["info"]["turn"] for e, r in err.value.partial.items()} == {
                "b": 2, "d": 2}
            assert sorted(server.service._envs) == ["b", "d"]  # nothing failed over
            with pytest.raises(EnvServerError, match=f"{doomed}/v1/close: no answer"):
                client.close(["a", "c"])
    finally:
        process.kill()
        process.wait(timeout=10)


def test_the_error_that_stopped_a_block_is_the_one_raised(tmp_path, video_path):
    """Leaving a `with EnvClient` block on an error whose server died: that error comes out,
    the failed cleanup (/v1/close) only as a note on it."""
    process, doomed = start_server_process(tmp_path, video_path)
    try:
        with pytest.raises(EnvServerError) as err:
            with EnvClient(doomed, retries=0) as client:
                client.create({"a": FRAMES})
                client.reset({"a": 0})
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
                client.step({"a": "<more/>"})
        assert str(err.value).startswith(f"{doomed}/v1/step")
        assert any("/v1/close" in note for note in getattr(err.value, "__notes__", [""]))
    finally:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture
def frozen_server():
    """A server that accepts connections and never answers (a hung process)."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def test_a_frozen_server_fails_health_checks_and_calls_by_their_limits(frozen_server):
    """Health checks give up after two short tries; a call after its deadline, however
    long each attempt may wait (the limits are what the messages report)."""
    with EnvClient(frozen_server, health_timeout_s=0.2) as client:
        with pytest.raises(EnvServerError, match=r"/health: no answer after 2 attempts.*"
                                                 r"ReadTimeout"):
            client.health()
    client = EnvClient(frozen_server, timeout_s=300, retries=50, backoff_s=0.01,
                       deadline_s=0.5)
    try:
        with pytest.raises(EnvServerError, match=r"the 0.5 s deadline of a call passed"):
            client.create({"a": FRAMES})
    finally:
        client.shutdown()


def test_the_client_carries_the_token(serve):
    server = serve(token="s3cret")
    with EnvClient(server.url, token="s3cret") as client:
        assert client.create({"a": FRAMES})
    with EnvClient(server.url, token="wrong") as client, pytest.raises(
            EnvServerError, match=r"/v1/envs: HTTP 401 for env 'b': missing or wrong bearer "
                                  r"token \(field Authorization\)"):
        client.create({"b": FRAMES})


def test_jpeg_codec_frames_are_close_to_raw_frames(server):
    with EnvClient(server.url) as raw, EnvClient(server.url, codec="jpeg") as jpeg:
        raw.create({"a": {"group": "qa-retrieve"}})
        jpeg.create({"b": {"group": "qa-retrieve"}})
        exact, lossy = raw.reset({"a": 2})["a"], jpeg.reset({"b": 2})["b"]
        assert exact.text == lossy.text and len(exact.frames) == len(lossy.frames) == 8
        for a, b in zip(exact.frames, lossy.frames, strict=True):
            assert a.shape == b.shape
            assert np.abs(a.astype(int) - b.astype(int)).mean() < 4


def test_health_by_url_reports_the_pool_cache(server):
    with EnvClient(server.url) as client:
        client.create({"a": {"group": "qa-single"}})
        client.reset({"a": 0})
        health = client.health()[server.url]
        assert health["envs"] == 1 and health["pool_cache"]["entries"] >= 1
