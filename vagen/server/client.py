"""Client of one or more env servers: one `requests.Session`, one HTTP call per batch and
server, env ids sharded over the servers, retries with backoff that are safe because every
call is idempotent on the server (create by spec, reset by seed, step by step index, close).

An env lives on the server that created it: its calls are never sent to another server,
so a dead server fails its envs' calls with an error naming its URL and the env ids."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Any

import requests

from vagen.env.base import Observation, StepResult
from vagen.server.service import EnvSpec
from vagen.server.wire import (
    DEFAULT_CODEC,
    WireError,
    decode_observation,
    decode_step_result,
    get_codec,
    loads,
)

READ_CHUNK_BYTES = 1 << 20
RETRY_STATUSES = (502, 503, 504)
RETRY_ERRORS = (requests.ConnectionError, requests.Timeout,
                requests.exceptions.ChunkedEncodingError)


class EnvServerError(RuntimeError):
    """A call failed; the message names the server URL and the env ids. `partial` holds the
    results of the batch's envs that did succeed (steps that were applied); `failures` the
    failed envs' `(status, message)` by env id."""

    def __init__(self, message: str, url: str, env_ids: Sequence[str],
                 status: int | None = None, partial: dict[str, Any] | None = None,
                 failures: dict[str, tuple[int | None, str]] | None = None):
        super().__init__(message)
        self.url = url
        self.env_ids = list(env_ids)
        self.status = status
        self.partial = partial or {}
        self.failures = failures or {env_id: (status, message) for env_id in self.env_ids}

    def answered(self, env_ids: Sequence[str]) -> dict[str, str]:
        """The messages of those of `env_ids` whose server answered with an error (the env
        cannot play: a bad video or row), leaving out envs whose server did not answer."""
        mine = set(env_ids)
        return {env_id: message for env_id, (status, message) in self.failures.items()
                if status is not None and env_id in mine}


class EnvClient:
    """Batched env calls against servers at `urls` (e.g. "http://127.0.0.1:5000").

    Safe to share between threads whose calls touch different env ids (the verl agent loop
    runs one episode per thread on one client).

    Time limits: an attempt waits `timeout_s` for an answer (a batch of cold video decodes
    can take minutes), a call gives up after `deadline_s` all attempts and backoffs
    together, and `health()` after `health_timeout_s` a try (two tries): a frozen server
    fails a health check within a minute and a call within its deadline."""

    def __init__(self, urls: str | Sequence[str], token: str | None = None,
                 codec: str = DEFAULT_CODEC, timeout_s: float = 300.0, retries: int = 3,
                 backoff_s: float = 0.5, connect_timeout_s: float = 5.0,
                 deadline_s: float = 600.0, health_timeout_s: float = 10.0):
        self.urls = [urls] if isinstance(urls, str) else list(urls)
        if not self.urls:
            raise ValueError("EnvClient needs at least one server URL")
        self.urls = [url.rstrip("/") for url in self.urls]
        self.codec = get_codec(codec)
        self.connect_timeout_s = connect_timeout_s
        self.timeout_s = timeout_s
        self.deadline_s = deadline_s
        self.health_timeout_s = health_timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self._session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=max(10, len(self.urls)))
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._headers = {"Content-Type": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._fanout = ThreadPoolExecutor(len(self.urls)) if len(self.urls) > 1 else None
        self._placing = threading.Lock()
        self._server_of: dict[str, str] = {}
        self._steps: dict[str, int] = {}
        self._prompts: dict[str, str] = {}

    def __enter__(self) -> EnvClient:
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: object) -> None:
        """Close this client's envs. When the block is leaving with an error, that error is
        the one raised: a failing close (the server is likely what failed) is added to it as
        a note, never raised in its place."""
        try:
            self.close(list(self._server_of))
        except EnvServerError as cleanup:
            if exc is None:
                raise
            if hasattr(exc, "add_note"):
                exc.add_note(f"(closing the envs afterwards failed too: {cleanup})")
        finally:
            self.shutdown()

    def server_of(self, env_id: str) -> str:
        if env_id not in self._server_of:
            raise KeyError(f"env '{env_id}' was not created by this client")
        return self._server_of[env_id]

    def create(self, specs: Mapping[str, EnvSpec | Mapping[str, Any]]) -> dict[str, str]:
        """Create envs by id, each new one on the server holding fewest of this client's
        envs. Returns each env's system prompt."""
        with self._placing:
            load = Counter(self._server_of.values())
            for env_id in specs:
                if env_id not in self._server_of:
                    url = min(self.urls, key=lambda u: load[u])
                    self._server_of[env_id] = url
                    load[url] += 1
        items = {env_id: {"env_id": env_id, **asdict(_spec(spec))}
                 for env_id, spec in specs.items()}
        try:
            answers = self._call("/v1/envs", items, on_success=self._after_create)
        except EnvServerError as err:
            for env_id in set(specs) - set(err.partial) - set(self._prompts):
                self._server_of.pop(env_id, None)
            raise
        return {env_id: a["system_prompt"] for env_id, a in answers.items()}

    def reset(self, seeds: Mapping[str, int]) -> dict[str, Observation]:
        """Reset envs by seed; their step indices start again at 0."""
        items = {env_id: {"env_id": env_id, "seed": int(seed)} for env_id, seed in seeds.items()}
        answers = self._call("/v1/reset", items, on_success=self._after_reset)
        return {env_id: decode_observation(a["obs"], self.codec) for env_id, a in answers.items()}

    def step(self, actions: Mapping[str, str]) -> dict[str, StepResult]:
        """Step envs with action texts. Each carries its env's step index, so a retried
        request never steps an env twice."""
        for env_id in actions:
            if env_id not in self._steps:
                raise KeyError(f"env '{env_id}' has not been reset through this client")
        items = {env_id: {"env_id": env_id, "action": action, "step": self._steps[env_id]}
                 for env_id, action in actions.items()}
        answers = self._call("/v1/step", items, on_success=self._after_step)
        return {env_id: decode_step_result(a["result"], self.codec)
                for env_id, a in answers.items()}

    def close(self, env_ids: Iterable[str]) -> None:
        """Close envs; ids already closed (or never created here) are skipped. The ids are
        forgotten even when their server cannot be reached (it lost them with its process)."""
        items = {env_id: {"env_id": env_id} for env_id in env_ids if env_id in self._server_of}
        try:
            if items:
                self._call("/v1/close", items)
        finally:
            for env_id in items:
                for table in (self._server_of, self._steps, self._prompts):
                    table.pop(env_id, None)

    def system_prompt(self, env_id: str) -> str:
        if env_id not in self._prompts:
            raise KeyError(f"env '{env_id}' was not created by this client")
        return self._prompts[env_id]

    def health(self) -> dict[str, dict[str, Any]]:
        """Each server's /health answer by URL."""
        return {url: self._request("GET", url, "/health", None, [],
                                   timeout_s=self.health_timeout_s, retries=1)
                for url in self.urls}

    def shutdown(self) -> None:
        """Release the HTTP session (envs stay on the servers; `close` them first)."""
        if self._fanout is not None:
            self._fanout.shutdown(wait=True)
        self._session.close()

    def _after_create(self, env_id: str, answer: dict[str, Any]) -> None:
        self._prompts[env_id] = answer["system_prompt"]

    def _after_reset(self, env_id: str, answer: dict[str, Any]) -> None:
        self._steps[env_id] = 0
        self._prompts[env_id] = answer["system_prompt"]

    def _after_step(self, env_id: str, answer: dict[str, Any]) -> None:
        self._steps[env_id] += 1

    def _call(self, path: str, items: dict[str, dict[str, Any]],
              on_success: Callable[[str, dict[str, Any]], None] | None = None
              ) -> dict[str, dict[str, Any]]:
        """One request per server holding some of `items`; per-env answers by env id.
        Envs that failed are raised together after the successful ones were recorded."""
        by_url: dict[str, list[str]] = {}
        for env_id in items:
            by_url.setdefault(self.server_of(env_id), []).append(env_id)
        jobs = [(url, ids, {"codec": self.codec.name, "envs": [items[i] for i in ids]})
                for url, ids in by_url.items()]
        if self._fanout is None or len(jobs) == 1:
            replies = [self._request_or_error("POST", url, path, body, ids)
                       for url, ids, body in jobs]
        else:
            replies = list(self._fanout.map(
                lambda job: self._request_or_error("POST", job[0], path, job[2], job[1]), jobs))
        answers: dict[str, dict[str, Any]] = {}
        failures: list[tuple[str, str, str, int | None]] = []
        for (url, ids, _), reply in zip(jobs, replies, strict=True):
            if isinstance(reply, EnvServerError):
                failures.extend((url, env_id, str(reply), reply.status) for env_id in ids)
                continue
            for answer in _results(reply, url, path, ids):
                if answer.get("ok"):
                    answers[answer["env_id"]] = answer
                    if on_success is not None:
                        on_success(answer["env_id"], answer)
                else:
                    failures.append((url, answer["env_id"], f"{url}{path}: env "
                                     f"'{answer['env_id']}' failed ({answer.get('status')}, "
                                     f"field {answer.get('field')}): {answer.get('error')}",
                                     answer.get("status")))
        if failures:
            url, _, _, status = failures[0]
            raise EnvServerError("; ".join(dict.fromkeys(f[2] for f in failures)), url,
                                 [f[1] for f in failures], status, partial=answers,
                                 failures={f[1]: (f[3], f[2]) for f in failures})
        return answers

    def _request_or_error(self, method: str, url: str, path: str, body: Any,
                          env_ids: Sequence[str]) -> Any:
        try:
            return self._request(method, url, path, body, env_ids)
        except EnvServerError as err:
            return err

    def _request(self, method: str, url: str, path: str, body: Any,
                 env_ids: Sequence[str], timeout_s: float | None = None,
                 retries: int | None = None) -> Any:
        """One HTTP call, retried with exponential backoff on connection errors, timeouts
        and 502/503/504 until `deadline_s`; a 4xx/5xx answer raises with the server's error
        and field."""
        data = None if body is None else json.dumps(body)
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        retries = self.retries if retries is None else retries
        give_up = time.monotonic() + self.deadline_s
        last_error = ""
        attempts = 0
        for attempt in range(retries + 1):
            if attempt:
                time.sleep(min(self.backoff_s * 2 ** (attempt - 1),
                               max(0.0, give_up - time.monotonic())))
            left = give_up - time.monotonic()
            if left <= 0:
                last_error += f" (the {self.deadline_s:g} s deadline of a call passed)"
                break
            attempts += 1
            try:
                response = self._session.request(
                    method, url + path, data=data, headers=self._headers, stream=True,
                    timeout=(min(self.connect_timeout_s, left), min(timeout_s, left)))
                # large pieces: requests' default 10 KB reads are slow for batches of frames
                content = b"".join(response.iter_content(READ_CHUNK_BYTES))
            except RETRY_ERRORS as err:
                last_error = f"{type(err).__name__}: {err}"
                continue
            if response.status_code in RETRY_STATUSES:
                last_error = f"HTTP {response.status_code}"
                continue
            try:
                message = loads(content, response.headers.get("Content-Type", ""))
            except WireError as err:
                raise EnvServerError(f"{url}{path}: unreadable answer (HTTP "
                                     f"{response.status_code}){_ids(env_ids)}: {err}",
                                     url, env_ids, response.status_code) from err
            if response.status_code >= 400:
                raise EnvServerError(
                    f"{url}{path}: HTTP {response.status_code}{_ids(env_ids)}: "
                    f"{_get(message, 'error')} (field {_get(message, 'field')})",
                    url, env_ids, response.status_code)
            return message
        raise EnvServerError(f"{url}{path}: no answer after {attempts} attempts"
                             f"{_ids(env_ids)}: {last_error}", url, env_ids)


class RemoteEnv:
    """An `Env` whose state lives on an env server, so `check_env` and the rollout treat a
    remote env like a local one. Each call is a batch of one through `client`."""

    def __init__(self, client: EnvClient, env_id: str, spec: EnvSpec | Mapping[str, Any]):
        self.client = client
        self.env_id = env_id
        client.create({env_id: spec})

    def reset(self, seed: int) -> Observation:
        return self.client.reset({self.env_id: seed})[self.env_id]

    def step(self, action_text: str) -> StepResult:
        return self.client.step({self.env_id: action_text})[self.env_id]

    def system_prompt(self) -> str:
        return self.client.system_prompt(self.env_id)

    def close(self) -> None:
        self.client.close([self.env_id])


def _spec(spec: EnvSpec | Mapping[str, Any]) -> EnvSpec:
    return spec if isinstance(spec, EnvSpec) else EnvSpec(**spec)


def _results(message: Any, url: str, path: str, env_ids: Sequence[str]) -> list[dict]:
    results = message.get("results") if isinstance(message, dict) else None
    if not isinstance(results, list) or len(results) != len(env_ids):
        raise EnvServerError(f"{url}{path}: the answer{_ids(env_ids)} has no 'results' list "
                             "of one entry per env", url, env_ids)
    return results


def _get(message: Any, key: str) -> Any:
    return message.get(key) if isinstance(message, dict) else message


def _ids(env_ids: Sequence[str], shown: int = 5) -> str:
    """" for env 'a'" / " for envs 'a', 'b' and 3 more" / "" (no env ids)."""
    if not env_ids:
        return ""
    listed = ", ".join(f"'{i}'" for i in env_ids[:shown])
    more = f" and {len(env_ids) - shown} more" if len(env_ids) > shown else ""
    return f" for env{'s' * (len(env_ids) > 1)} {listed}{more}"
