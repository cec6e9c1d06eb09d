"""The env service: holds envs by id and runs batched create/reset/step/close on a thread
pool, with cold videos decoded in worker processes (`decoders`) so that the threads scale
with cores. It knows nothing about HTTP (that is `app.py`); it is what the server's
handlers call.

Each env in a batch succeeds or fails on its own (its error goes into its slot). Steps are
idempotent by step index, so a client may resend a step whose answer it never received
without the env stepping twice."""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vagen.data.sample import SampleError
from vagen.env.base import Env, EpisodeStateError, StepResult
from vagen.env.registry import make_env
from vagen.env.video_qa.config import VideoQAConfig
from vagen.video.decode import VideoError
from vagen.video.pool_processes import use_pool_processes

log = logging.getLogger(__name__)
# What building an env from a wrong name, config or data path raises.
CONFIG_ERRORS = (KeyError, ValueError, TypeError, FileNotFoundError)
# What playing a sample whose video or row is broken raises (HTTP 422, field "data").
DATA_ERRORS = (VideoError, SampleError)


class RequestError(ValueError):
    """The whole request is wrong (nothing was run): HTTP `status`, offending `field`."""

    def __init__(self, message: str, field: str | None = None, status: int = 400):
        super().__init__(message)
        self.field = field
        self.status = status


class SlotError(RuntimeError):
    """One env's part of a batch failed; the rest of the batch is unaffected."""

    def __init__(self, message: str, status: int = 500, field: str | None = None):
        super().__init__(message)
        self.status = status
        self.field = field


@dataclass
class EnvSpec:
    """What to build: a registered env name and its config, optionally on top of a named
    group from the server's `env_config.yaml` (the group supplies defaults and `env`)."""

    env: str = field(default="", metadata={"help": "registered env name (default: the group's)"})
    group: str = field(default="", metadata={"help": "env group name in the server's config"})
    config: dict[str, Any] = field(default_factory=dict,
                                   metadata={"help": "config keys, overriding the group's"})

    def __post_init__(self) -> None:
        if not self.env and not self.group:
            raise ValueError("an env spec needs 'env' (a registered env name) or 'group' "
                             "(an env group of the server's config)")


@dataclass
class Slot:
    """One env's answer within a batch: a `value` or an `error` with its HTTP-like status."""

    env_id: str
    value: Any = None
    error: str | None = None
    status: int = 200
    field: str | None = None
    replayed: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class _Entry:
    """An env and the state that makes its steps idempotent; `lock` serialises its calls."""

    spec: EnvSpec
    env: Env | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    steps: int | None = None  # steps applied since the last reset; None before any reset
    last_action: str | None = None
    last_result: StepResult | None = None


class EnvService:
    """Envs by id, stepped in parallel by `workers` threads. With `decoders` > 0, every cold
    frame pool of this process is built in that many worker processes until `shutdown`
    (the pool cache is process-wide, so its builder is too); with 0 the threads decode.

    `data_roots` guards what a client may read. None (an in-process service: the client is
    this program) lets a config name any samples file. A list (what `vagen server` passes)
    lets a client-sent config name only files inside its env groups' folders or those
    roots; anything else - an absolute path elsewhere, `..`, a symlink that resolves
    outside - is refused with the same 400 whether or not the file exists."""

    def __init__(self, groups: dict[str, dict[str, Any]] | None = None, workers: int = 1,
                 data_roots: list[str] | None = None, decoders: int = 0):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if decoders < 0:
            raise ValueError(f"decoders must be >= 0, got {decoders}")
        self.groups = dict(groups or {})
        self.data_roots = None if data_roots is None else [
            Path(root).resolve() for root in [*data_roots, *(
                str(Path(g["data"]).parent) for g in self.groups.values() if g.get("data"))]]
        self.workers = workers
        self._envs: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="env")
        self._decoders = use_pool_processes(decoders) if decoders else None

    def __len__(self) -> int:
        return len(self._envs)

    @property
    def decoders(self) -> int:
        """How many processes decode this service's cold videos (0: its threads do)."""
        return self._decoders.processes if self._decoders else 0

    def create(self, specs: list[tuple[str, EnvSpec]]) -> list[Slot]:
        """Build envs. Creating an id that exists with the same spec is a no-op returning
        the existing env (so a retried create is safe); with another spec it is an error.
        Value: the env's system prompt."""
        _check_unique([env_id for env_id, _ in specs])
        for i, (_, spec) in enumerate(specs):
            if spec.group and spec.group not in self.groups:
                known = ", ".join(sorted(self.groups)) or "none (start the server with --config)"
                raise RequestError(f"unknown env group '{spec.group}'; groups: {known}",
                                   field=f"envs[{i}].group", status=404)
            self._check_data(spec, f"envs[{i}].config.data")
        return self._run(self._create_one, specs)

    def reset(self, seeds: list[tuple[str, int]]) -> list[Slot]:
        """Reset envs by seed. Value: (Observation, system prompt)."""
        self._check_known([env_id for env_id, _ in seeds])
        return self._run(self._reset_one, seeds)

    def step(self, actions: list[tuple[str, str, int]]) -> list[Slot]:
        """Step envs with `(env_id, action, step_index)`. The index counts steps since the
        env's reset; resending the last applied index with the same action replays its
        stored result (`Slot.replayed`). Value: StepResult."""
        self._check_known([env_id for env_id, _, _ in actions])
        return self._run(self._step_one, actions)

    def close(self, env_ids: list[str]) -> list[Slot]:
        """Close and forget envs; closing an unknown or closed id is harmless.
        Value: whether the id was open."""
        _check_unique(env_ids)
        return self._run(self._close_one, [(env_id,) for env_id in env_ids])

    def shutdown(self) -> None:
        """Close every env (each in its own `finally`), stop the worker threads, and stop
        the decoding processes (cold pools are built in the calling thread again)."""
        try:
            for env_id in list(self._envs):
                self._close_one(env_id)
        finally:
            self._pool.shutdown(wait=True)
            if self._decoders:
                use_pool_processes(0)
                self._decoders.close()

    def _run(self, fn: Callable[..., Slot], items: list[tuple]) -> list[Slot]:
        """Each of up to `workers` threads takes the next unrun item until none is left:
        balanced when some envs are slow (a cold video), one hand-off per thread."""
        slots: list[Slot | None] = [None] * len(items)
        queue = iter(enumerate(items))
        lock = threading.Lock()

        def drain() -> None:
            while True:
                with lock:
                    job = next(queue, None)
                if job is None:
                    return
                slots[job[0]] = _slot(fn, *job[1])

        for future in [self._pool.submit(drain) for _ in range(min(self.workers, len(items)))]:
            future.result()
        return [dataclasses.replace(slot, error=self.redact(slot.error)) if slot.error else slot
                for slot in slots]

    def redact(self, text: str) -> str:
        """`text` naming server files relative to their data root (by the root's folder name)
        and to the working folder, for a service that faces other machines (data_roots
        set): error answers never show absolute server paths of the data."""
        if self.data_roots is None:
            return text
        for root in sorted(self.data_roots, key=lambda r: len(str(r)), reverse=True):
            text = text.replace(str(root), root.name)
        return text.replace(os.getcwd(), ".")

    def _check_data(self, spec: EnvSpec, where: str) -> None:
        """A client-chosen samples file must lie inside the data roots (see the class)."""
        if self.data_roots is None:
            return
        group = self.groups.get(spec.group, {})
        data = spec.config.get("data")
        if data is None and not spec.group and spec.env == "video_qa":
            data = VideoQAConfig.data  # what the env would read
        if data is None or data == group.get("data"):
            return  # the server's own group, or an env that reads no samples file
        resolved = Path(str(data)).resolve()
        if not any(resolved.is_relative_to(root) for root in self.data_roots):
            raise RequestError(f"'{data}' is not inside the server's data roots (its env "
                               "groups' folders and --data-root); name a samples file there",
                               field=where)

    def _create_one(self, env_id: str, spec: EnvSpec) -> Slot:
        with self._lock:
            entry = self._envs.get(env_id)
            building = entry is None
            if building:
                entry = self._envs[env_id] = _Entry(spec)
                entry.lock.acquire()
        if building:
            try:
                name = spec.env or self.groups[spec.group].get("env", "")
                entry.env = make_env(name, {**self.groups.get(spec.group, {}), **spec.config})
            except BaseException as err:
                with self._lock:
                    self._envs.pop(env_id, None)
                if isinstance(err, CONFIG_ERRORS):  # a bad spec or config, not a server fault
                    raise SlotError(f"{type(err).__name__}: {err}", status=400,
                                    field="config") from err
                raise
            finally:
                entry.lock.release()
            return Slot(env_id, value=entry.env.system_prompt())
        with entry.lock:
            if entry.env is None or entry.spec != spec:
                raise SlotError(f"env id '{env_id}' already exists with another spec; close it "
                                "first or choose another id", status=409, field="env_id")
            return Slot(env_id, value=entry.env.system_prompt())

    def _reset_one(self, env_id: str, seed: int) -> Slot:
        entry = self._entry(env_id)
        with entry.lock:
            env = _open(entry, env_id)
            obs = env.reset(seed)
            entry.steps, entry.last_action, entry.last_result = 0, None, None
            return Slot(env_id, value=(obs, env.system_prompt()))

    def _step_one(self, env_id: str, action: str, index: int) -> Slot:
        entry = self._entry(env_id)
        with entry.lock:
            env = _open(entry, env_id)
            if entry.steps is None:
                raise SlotError(f"env '{env_id}' was never reset; reset it before stepping",
                                status=409, field="step")
            if index == entry.steps - 1 and entry.last_result is not None:
                if action != entry.last_action:
                    raise SlotError(f"step {index} of env '{env_id}' was already applied with "
                                    "another action; send step index "
                                    f"{entry.steps} for a new step", status=409, field="action")
                return Slot(env_id, value=entry.last_result, replayed=True)
            if index != entry.steps:
                raise SlotError(f"step index {index} does not match env '{env_id}', whose next "
                                f"step is {entry.steps}", status=409, field="step")
            result = env.step(action)
            entry.steps, entry.last_action, entry.last_result = index + 1, action, result
            return Slot(env_id, value=result)

    def _close_one(self, env_id: str) -> Slot:
        with self._lock:
            entry = self._envs.pop(env_id, None)
        if entry is None:
            return Slot(env_id, value=False)
        with entry.lock:
            env, entry.env = entry.env, None
            if env is not None:
                env.close()
        return Slot(env_id, value=True)

    def _entry(self, env_id: str) -> _Entry:
        with self._lock:
            entry = self._envs.get(env_id)
        if entry is None:
            raise SlotError(f"env '{env_id}' is not open (closed meanwhile?)", status=404,
                            field="env_id")
        return entry

    def _check_known(self, env_ids: list[str]) -> None:
        _check_unique(env_ids)
        with self._lock:
            for i, env_id in enumerate(env_ids):
                if env_id not in self._envs:
                    raise RequestError(f"unknown env id '{env_id}'; create it with /v1/envs "
                                       "first", field=f"envs[{i}].env_id", status=404)


def _open(entry: _Entry, env_id: str) -> Env:
    if entry.env is None:
        raise SlotError(f"env '{env_id}' is closed", status=404, field="env_id")
    return entry.env


def _check_unique(env_ids: list[str]) -> None:
    seen: set[str] = set()
    for i, env_id in enumerate(env_ids):
        if env_id in seen:
            raise RequestError(f"env id '{env_id}' appears twice in one batch",
                               field=f"envs[{i}].env_id")
        seen.add(env_id)


def _slot(fn: Callable[..., Slot], env_id: str, *args: Any) -> Slot:
    """Run one env's call; its failure becomes its slot's error (logged with traceback)."""
    try:
        return fn(env_id, *args)
    except SlotError as err:
        return Slot(env_id, error=str(err), status=err.status, field=err.field)
    except EpisodeStateError as err:  # e.g. a step after the episode ended
        return Slot(env_id, error=f"{type(err).__name__}: {err}", status=409, field="step")
    except DATA_ERRORS as err:  # the sample's video or row cannot be read: the data's fault
        log.warning("env '%s': %s: %s", env_id, fn.__name__.strip("_"), err)
        return Slot(env_id, error=f"{type(err).__name__}: {err}", status=422, field="data")
    except Exception as err:
        log.exception("env '%s': %s failed", env_id, fn.__name__.strip("_"))
        return Slot(env_id, error=f"{type(err).__name__}: {err}", status=500)

