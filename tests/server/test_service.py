import multiprocessing
import threading
from dataclasses import replace

import numpy as np
import pytest

from tests.server.conftest import SYNTHETIC_SAMPLES
from tests.server.frames_env import CRASH_ACTION
from vagen.data import load_samples, save_samples
from vagen.env.base import Observation, StepResult
from vagen.env.registry import register_env
from vagen.server.service import EnvService, EnvSpec, RequestError
from vagen.video import clear_pool_cache

FRAMES = EnvSpec(group="frames")
_barrier = threading.Barrier(2)


@register_env("test_barrier")
class BarrierEnv:
    """Resets only when another env resets at the same time: proves parallel workers."""

    def __init__(self, config):
        pass

    def system_prompt(self) -> str:
        return "wait"

    def reset(self, seed: int) -> Observation:
        _barrier.wait(timeout=2)
        return Observation("", [], [])

    def step(self, action_text: str) -> StepResult:
        raise NotImplementedError

    def close(self) -> None:
        pass


def _values(slots):
    assert all(slot.ok for slot in slots), [slot.error for slot in slots]
    return [slot.value for slot in slots]


def test_batched_create_reset_step_close(service):
    prompts = _values(service.create([("a", FRAMES), ("b", FRAMES)]))
    assert prompts[0].startswith("Answer <answer>k</answer>") and len(service) == 2
    (obs_a, prompt), (obs_b, _) = _values(service.reset([("a", 3), ("b", 5)]))
    assert prompt == prompts[0]
    assert obs_a.timestamps == [0.75, 1.0] and obs_b.timestamps == [1.25, 1.5]
    assert obs_a.text == "turn 0: <image> <image>"
    a, b = _values(service.step([("a", "<more/>", 0), ("b", "<answer>5</answer>", 0)]))
    assert a.info["turn"] == 1 and not a.done and a.obs.timestamps == [1.25, 1.5]
    assert b.terminated and b.reward == 1.0 and b.info["correct"] is True
    assert _values(service.close(["a", "b"])) == [True, True] and len(service) == 0


def test_one_failing_env_does_not_fail_the_batch(service):
    _values(service.create([("a", FRAMES), ("b", FRAMES)]))
    _values(service.reset([("a", 0), ("b", 0)]))
    crashed, fine = service.step([("a", CRASH_ACTION, 0), ("b", "<more/>", 0)])
    assert crashed.status == 500
    assert crashed.error == "RuntimeError: the test env crashes on purpose"
    assert fine.ok and fine.value.info["turn"] == 1
    # the crashed step was not counted: index 0 is still the next step of env "a"
    assert _values(service.step([("a", "<more/>", 0)]))[0].info["turn"] == 1


def test_a_resent_step_index_replays_the_stored_result(service):
    _values(service.create([("a", FRAMES)]))
    _values(service.reset([("a", 2)]))
    first = service.step([("a", "<more/>", 0)])[0]
    again = service.step([("a", "<more/>", 0)])[0]
    assert not first.replayed and again.replayed and again.value is first.value
    second = _values(service.step([("a", "<more/>", 1)]))[0]
    assert second.info["turn"] == 2  # the env stepped once per index, not three times


def test_step_index_conflicts_are_slot_errors(service):
    _values(service.create([("a", FRAMES)]))
    never_reset = service.step([("a", "<more/>", 0)])[0]
    assert never_reset.status == 409 and "never reset" in never_reset.error
    _values(service.reset([("a", 0)]))
    _values(service.step([("a", "<more/>", 0)]))
    other_action = service.step([("a", "<answer>1</answer>", 0)])[0]
    assert other_action.status == 409 and other_action.field == "action"
    skipped = service.step([("a", "<more/>", 5)])[0]
    assert skipped.status == 409 and "next step is 1" in skipped.error
    _values(service.reset([("a", 0)]))  # reset starts the count again
    assert _values(service.step([("a", "<more/>", 0)]))[0].info["turn"] == 1


def test_recreating_an_id_is_a_no_op_with_the_same_spec_and_an_error_with_another(service):
    _values(service.create([("a", FRAMES)]))
    assert service.create([("a", FRAMES)])[0].ok and len(service) == 1
    other = service.create([("a", EnvSpec(group="frames", config={"per_turn": 3}))])[0]
    assert other.status == 409 and "already exists with another spec" in other.error


def test_request_errors_name_the_field_and_run_nothing(service):
    _values(service.create([("a", FRAMES)]))
    with pytest.raises(RequestError, match="unknown env id 'zzz'") as err:
        service.reset([("a", 0), ("zzz", 0)])
    assert err.value.status == 404 and err.value.field == "envs[1].env_id"
    with pytest.raises(RequestError, match="appears twice") as err:
        service.step([("a", "<more/>", 0), ("a", "<more/>", 0)])
    assert err.value.status == 400
    with pytest.raises(RequestError, match="unknown env group 'nope'; groups: frames"):
        service.create([("b", EnvSpec(group="nope"))])
    with pytest.raises(ValueError, match="needs 'env'"):
        EnvSpec()


def test_create_errors_are_isolated_and_leave_no_entry(service):
    slots = service.create([("bad", EnvSpec(env="no_such_env")), ("good", FRAMES)])
    assert (slots[0].status, slots[0].field) == (400, "config")
    assert "unknown env 'no_such_env'" in slots[0].error
    assert "test_frames" in slots[0].error  # the registry lists the valid names
    assert slots[1].ok and len(service) == 1


def test_a_missing_data_file_is_a_config_error_naming_it(service, tmp_path):
    missing = tmp_path / "nowhere.jsonl"
    slot = service.create([("qa", EnvSpec(group="qa-retrieve", config={"data": str(missing)}))])[0]
    assert (slot.status, slot.field) == (400, "config") and str(missing) in slot.error
    assert len(service) == 0


def test_close_is_harmless_twice_and_shutdown_closes_every_env(groups):
    service = EnvService(groups, workers=1)
    _values(service.create([("a", FRAMES), ("b", FRAMES)]))
    env_a = service._envs["a"].env
    env_b = service._envs["b"].env
    assert _values(service.close(["a"])) == [True]
    assert _values(service.close(["a", "never"])) == [False, False]
    service.shutdown()
    assert (env_a.closed, env_b.closed, len(service)) == (1, 1, 0)


def test_workers_step_envs_in_parallel():
    spec = EnvSpec(env="test_barrier")
    parallel = EnvService(workers=2)
    serial = EnvService(workers=1)
    try:
        for service in (parallel, serial):
            _values(service.create([("a", spec), ("b", spec)]))
        assert all(slot.ok for slot in parallel.reset([("a", 0), ("b", 0)]))
        _barrier.reset()
        # one worker runs the two resets one after the other: the barrier breaks
        assert not any(slot.ok for slot in serial.reset([("a", 0), ("b", 0)]))
    finally:
        parallel.shutdown()
        serial.shutdown()
        _barrier.reset()


def test_frames_come_from_the_real_video(service):
    _values(service.create([("a", FRAMES)]))
    (obs, _), = _values(service.reset([("a", 1)]))
    first = obs.frames[0].astype(int)
    assert obs.frames[0].shape == (48, 64, 3)
    # frame 1 was drawn as (20, 235, 128); H.264 keeps it within a few levels
    assert np.abs(first.mean(axis=(0, 1)) - [20, 235, 128]).max() < 6


def test_a_step_after_the_end_is_the_callers_mistake(service):
    """409 (not a 500 with a logged traceback): the episode is over, nothing was applied."""
    _values(service.create([("q", EnvSpec(group="qa-single"))]))
    _values(service.reset([("q", 0)]))
    (done,) = _values(service.step([("q", "<answer>A</answer>", 0)]))
    assert done.done
    (again,) = service.step([("q", "<answer>A</answer>", 1)])
    assert (again.status, again.field) == (409, "step") and "episode is over" in again.error


def test_a_video_that_cannot_be_read_is_a_data_error(service, synthetic_samples, tmp_path):
    """422 with field data for a missing or undecodable video: the sample's fault."""
    from dataclasses import replace

    from vagen.data import load_samples, save_samples

    (tmp_path / "text.mp4").write_text("not a video")
    sample = load_samples(synthetic_samples)[0]
    broken = [replace(sample, id="gone", videos=[str(tmp_path / "gone.mp4")]),
              replace(sample, id="text", videos=[str(tmp_path / "text.mp4")])]
    data = str(save_samples(broken, tmp_path / "broken.jsonl"))
    spec = EnvSpec(group="qa-single", config={"data": data})
    _values(service.create([("a", spec), ("b", spec)]))
    for slot in service.reset([("a", 0), ("b", 1)]):
        assert (slot.status, slot.field) == (422, "data") and "VideoError" in slot.error


def test_a_client_config_reads_only_inside_the_data_roots(groups, synthetic_samples, tmp_path):
    """`vagen server` passes data_roots: a config may name samples files in its groups'
    folders (or a --data-root), nothing else, with one answer whether or not a file exists."""
    import os

    root = tmp_path / "root"
    root.mkdir()
    (root / "samples.jsonl").write_bytes(synthetic_samples.read_bytes())
    (root / "escape.jsonl").symlink_to("/etc/passwd")
    service = EnvService(groups, workers=1, data_roots=[str(root)])
    try:
        inside = EnvSpec(group="qa-single", config={"data": str(root / "samples.jsonl")})
        assert service.create([("ok", inside)])[0].ok
        own = EnvSpec(group="qa-single")  # the group's own folder is a root too
        assert service.create([("own", own)])[0].ok
        messages = set()
        for data in ("/etc/passwd", "/etc/no-such-file", f"{root}/../../etc/passwd",
                     str(root / "escape.jsonl"), "/proc/self/environ"):
            spec = EnvSpec(group="qa-single", config={"data": data})
            with pytest.raises(RequestError) as err:
                service.create([("x", spec)])
            assert err.value.field == "envs[0].config.data" and err.value.status == 400
            messages.add(str(err.value).replace(data, "<data>"))
        assert len(messages) == 1 and "is not inside the server's data roots" in messages.pop()
        assert "x" not in service._envs and os.path.exists("/etc/passwd")
    finally:
        service.shutdown()


def test_an_in_process_service_trusts_its_caller(groups, synthetic_samples):
    service = EnvService(groups, workers=1)  # data_roots None: eval's and the trainer's own
    try:
        spec = EnvSpec(group="qa-single", config={"data": str(synthetic_samples)})
        assert service.create([("a", spec)])[0].ok
    finally:
        service.shutdown()


def test_a_fifo_as_data_is_refused_not_read(groups, tmp_path):
    import os

    os.mkfifo(tmp_path / "fifo.jsonl")
    service = EnvService(groups, workers=1)
    try:
        spec = EnvSpec(group="qa-single", config={"data": str(tmp_path / "fifo.jsonl")})
        (slot,) = service.create([("f", spec)])
        assert slot.status == 400 and "not a regular file" in slot.error
    finally:
        service.shutdown()


def test_decoders_serve_what_threads_serve_and_stop_with_the_service(groups, synthetic_samples,
                                                                     tmp_path):
    """Cold pools built in decoding processes give the same observations; an undecodable
    video is still the sample's 422; shutdown stops the processes."""
    (tmp_path / "text.mp4").write_text("not a video")
    sample = load_samples(synthetic_samples)[0]
    broken = str(save_samples([replace(sample, id="text", videos=[str(tmp_path / "text.mp4")])],
                              tmp_path / "broken.jsonl"))
    specs = [(f"q{i}", EnvSpec(group="qa-retrieve")) for i in range(SYNTHETIC_SAMPLES)]
    seeds = [(f"q{i}", i) for i in range(SYNTHETIC_SAMPLES)]
    observed = {}
    for decoders in (0, 2):
        clear_pool_cache()
        service = EnvService(groups, workers=2, decoders=decoders)
        try:
            _values(service.create([*specs, ("bad", EnvSpec(group="qa-retrieve",
                                                            config={"data": broken}))]))
            observed[decoders] = [obs for obs, _ in _values(service.reset(seeds))]
            assert bool(multiprocessing.active_children()) == bool(decoders)
            (bad,) = service.reset([("bad", 0)])
            assert (bad.status, bad.field) == (422, "data") and "text.mp4" in bad.error
        finally:
            service.shutdown()
        assert not multiprocessing.active_children()
    for threads, processes in zip(observed[0], observed[2], strict=True):
        assert threads.text == processes.text and threads.timestamps == processes.timestamps
        np.testing.assert_array_equal(np.stack(threads.frames), np.stack(processes.frames))


def test_decoders_must_not_be_negative():
    with pytest.raises(ValueError, match="decoders must be >= 0"):
        EnvService(decoders=-1)
