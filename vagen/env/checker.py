"""`check_env(env)`: does an env keep the contracts the server, rollout and trainers rely on
(docs/architecture.md, Contracts: Env protocol)? After Gymnasium's env checker: each failure is an
`EnvCheckError` that says what broke and how to fix it."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np

from vagen.env.base import IMAGE_PLACEHOLDER, Env, Observation, StepInfo, StepResult

MALFORMED_ACTION = "I am not sure <answer>"  # unclosed tag: a turn, never an exception
MAX_EPISODE_STEPS = 50


class EnvCheckError(AssertionError):
    """An env contract is broken; the message says how to fix it."""


def check_env(env: Env, seed: int = 0, actions: Sequence[str] | None = None) -> None:
    """Check `env` in place (it is reset, stepped and finally closed twice).

    `actions` are played after reset; default: the env's `oracle_action()` at each turn when
    it has one, else one malformed action and an answer."""
    _check(isinstance(env, Env), "the env lacks part of the protocol; implement reset(seed), "
                                 "step(action_text), system_prompt() and close() "
                                 "(vagen.env.base.Env)")
    prompt = env.system_prompt()
    _check(isinstance(prompt, str) and prompt.strip(),
           "system_prompt() must return the non-empty text that explains the actions")
    first, second = env.reset(seed), env.reset(seed)
    _check_observation(first, f"reset({seed})")
    difference = _difference(first, second)
    _check(difference is None, f"reset({seed}) twice gave different observations ({difference}); "
                               "derive every random choice from the seed (e.g. "
                               "random.Random(seed)), never from global state or the clock")
    played = [_play(env, seed, actions) for _ in range(2)]
    _check(len(played[0]) == len(played[1]),
           f"the same actions after reset({seed}) ended the episode after {len(played[0])} and "
           f"{len(played[1])} steps; make step depend only on the seed and the actions")
    for (action, a), (_, b) in zip(*played, strict=True):
        difference = _step_difference(a, b)
        _check(difference is None, f"step({action[:40]!r}) after reset({seed}) gave different "
                                   f"results in two runs ({difference}); make step depend only "
                                   "on the seed and the actions")
    _check_malformed_actions(env, seed)
    try:
        env.close()
        env.close()
    except Exception as err:
        raise EnvCheckError(f"close() twice raised {err!r}; make close() harmless to repeat "
                            "(envs are closed in finally blocks)") from err


def _check(ok: object, message: str) -> None:
    if not ok:
        raise EnvCheckError(message)


def _check_observation(obs: Observation, where: str) -> None:
    _check(isinstance(obs, Observation), f"{where} returned {type(obs).__name__}; return "
                                         "vagen.env.base.Observation")
    _check(isinstance(obs.text, str), f"{where}: Observation.text must be a str")
    placeholders = obs.text.count(IMAGE_PLACEHOLDER)
    _check(placeholders == len(obs.frames),
           f"{where}: the text has {placeholders} {IMAGE_PLACEHOLDER} placeholders but "
           f"{len(obs.frames)} frames; write one {IMAGE_PLACEHOLDER} per frame, in frame order")
    for name in ("timestamps", "video_ids"):
        _check(len(getattr(obs, name)) == len(obs.frames),
               f"{where}: Observation.{name} has {len(getattr(obs, name))} entries for "
               f"{len(obs.frames)} frames; give one per frame")
    for i, frame in enumerate(obs.frames):
        _check(isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim == 3
               and frame.shape[2] == 3,
               f"{where}: frame {i} must be a uint8 array (H, W, 3), got "
               f"{getattr(frame, 'dtype', type(frame))} {getattr(frame, 'shape', '')}")


def _check_step(result: StepResult, action: str) -> None:
    where = f"step({action[:40]!r})"
    _check(isinstance(result, StepResult), f"{where} returned {type(result).__name__}; return "
                                           "vagen.env.base.StepResult")
    _check_observation(result.obs, where)
    _check(isinstance(result.reward, int | float) and math.isfinite(result.reward),
           f"{where}: reward {result.reward!r} must be a finite number")
    _check(isinstance(result.terminated, bool) and isinstance(result.truncated, bool),
           f"{where}: terminated and truncated must be bools")
    _check(not (result.terminated and result.truncated),
           f"{where}: an episode ends either terminated (answered) or truncated (turn limit), "
           "not both")
    _check_info(result.info, where)


# The type each StepInfo field must have when reported (None is "not reported" where the
# field's default is None).
INFO_TYPES: dict[str, type | tuple[type, ...]] = {
    "valid_action": bool, "turn": int, "frames_seen": int, "answer": (str, type(None)),
    "correct": bool, "action_type": (str, type(None)), "error": str, "reward_parts": dict,
    "seen_times": list, "seen_video_ids": list, "sample_id": (str, type(None)),
    "frames_iou": (int, float, type(None)), "initial_iou": (int, float, type(None))}


def _check_info(info: object, where: str) -> None:
    """The info is a StepInfo as a dict: required keys present, each field of its type, and
    all of it JSON (it travels over HTTP)."""
    _check(isinstance(info, dict), f"{where}: info must be a dict (StepInfo(...).to_dict())")
    try:
        step = StepInfo.of(info)
    except ValueError as err:
        raise EnvCheckError(f"{where}: {err}") from err
    for name, kind in INFO_TYPES.items():
        value = getattr(step, name)
        wrong = not isinstance(value, kind) or (isinstance(value, bool) and kind is int)
        _check(not wrong, f"{where}: info[{name!r}] is {value!r}; StepInfo.{name} must be "
                          f"{getattr(kind, '__name__', kind)}")
    try:
        json.dumps(info)
    except (TypeError, ValueError) as err:
        raise EnvCheckError(f"{where}: info is not JSON ({err}); report plain numbers, "
                            "strings, lists and dicts (numpy values: .item() / .tolist())"
                            ) from err


def _play(env: Env, seed: int, actions: Sequence[str] | None) -> list[tuple[str, StepResult]]:
    """One episode from reset(seed): the given actions, or the oracle's until done."""
    env.reset(seed)
    planned = list(actions) if actions is not None else None
    oracle = getattr(env, "oracle_action", None)
    if planned is None and oracle is None:
        planned = [MALFORMED_ACTION, "<think>guess</think><answer>A</answer>"]
    steps: list[tuple[str, StepResult]] = []
    while len(steps) < MAX_EPISODE_STEPS and (planned is None or len(steps) < len(planned)):
        action = oracle() if planned is None else planned[len(steps)]
        result = env.step(action)
        _check_step(result, action)
        steps.append((action, result))
        if result.done:
            break
    return steps


def _check_malformed_actions(env: Env, seed: int) -> None:
    env.reset(seed)
    for _ in range(MAX_EPISODE_STEPS):
        try:
            result = env.step(MALFORMED_ACTION)
        except Exception as err:
            raise EnvCheckError(f"step({MALFORMED_ACTION!r}) raised {err!r}; model text must "
                                "never raise: return a turn with valid_action=False and the "
                                "format penalty") from err
        _check_step(result, MALFORMED_ACTION)
        _check(result.info["valid_action"] is False,
               f"step({MALFORMED_ACTION!r}) gave valid_action={result.info['valid_action']!r}; "
               "mark malformed actions valid_action=False")
        _check(not result.terminated, f"step({MALFORMED_ACTION!r}) terminated the episode; "
                                      "only an answer terminates, the turn limit truncates")
        if result.truncated:
            return
    raise EnvCheckError(f"{MAX_EPISODE_STEPS} malformed actions did not end the episode; "
                        "end it with truncated=True at the turn limit")


def _difference(a: Observation, b: Observation) -> str | None:
    if a.text != b.text:
        at = next((i for i, (x, y) in enumerate(zip(a.text, b.text, strict=False)) if x != y),
                  min(len(a.text), len(b.text)))
        return f"texts differ at character {at}: {a.text[at:at + 30]!r} vs {b.text[at:at + 30]!r}"
    if len(a.frames) != len(b.frames):
        return f"{len(a.frames)} vs {len(b.frames)} frames"
    for i, (x, y) in enumerate(zip(a.frames, b.frames, strict=True)):
        if x.shape != y.shape or not np.array_equal(x, y):
            return f"frame {i} differs"
    if list(a.timestamps) != list(b.timestamps) or list(a.video_ids) != list(b.video_ids):
        return "frame timestamps or video ids differ"
    return None


def _step_difference(a: StepResult, b: StepResult) -> str | None:
    for name in ("reward", "terminated", "truncated"):
        if getattr(a, name) != getattr(b, name):
            return f"{name} {getattr(a, name)!r} vs {getattr(b, name)!r}"
    for key in StepInfo.required():
        if a.info[key] != b.info[key]:
            return f"info[{key!r}] {a.info[key]!r} vs {b.info[key]!r}"
    return _difference(a.obs, b.obs)
