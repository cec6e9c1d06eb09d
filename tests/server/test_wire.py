import numpy as np
import pytest

from vagen.env.base import Observation, StepResult
from vagen.server.wire import (
    Codec,
    RawCodec,
    WireError,
    decode_observation,
    decode_step_result,
    encode_observation,
    encode_step_result,
    get_codec,
    list_codecs,
    loads,
    register_codec,
    to_plain,
)


def _frames() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8),
            rng.integers(0, 256, (30, 20, 3), dtype=np.uint8)]


def _smooth_frame() -> np.ndarray:
    y, x = np.mgrid[0:64, 0:96]
    return np.stack([x * 2, y * 3, (x + y)], axis=-1).astype(np.uint8)


def _round_trip(codec: Codec, message: dict) -> dict:
    return loads(codec.dumps(message), codec.content_type)


def test_codecs_listed():
    assert list_codecs() == ["jpeg", "msgpack", "png-base64"]


@pytest.mark.parametrize("name", ["msgpack", "png-base64"])
def test_lossless_codecs_round_trip_observations_exactly(name):
    codec = get_codec(name)
    obs = Observation("frames: <image> <image> — ünïcode", _frames(), [0.25, 12.75], [0, 3])
    back = decode_observation(_round_trip(codec, encode_observation(obs, codec)), codec)
    assert back.text == obs.text
    assert back.timestamps == [0.25, 12.75] and back.video_ids == [0, 3]
    assert [f.shape for f in back.frames] == [(48, 64, 3), (30, 20, 3)]
    for got, sent in zip(back.frames, obs.frames, strict=True):
        assert got.dtype == np.uint8 and np.array_equal(got, sent)


def test_jpeg_round_trips_frames_approximately():
    codec = get_codec("jpeg")
    frame = _smooth_frame()
    back = decode_observation(_round_trip(codec, encode_observation(
        Observation("<image>", [frame], [1.0]), codec)), codec)
    error = np.abs(back.frames[0].astype(int) - frame.astype(int))
    assert back.frames[0].shape == frame.shape
    assert error.mean() < 2.0 and error.max() < 40


def test_raw_frames_are_much_smaller_in_jpeg():
    frame = _smooth_frame()
    raw = len(get_codec("msgpack").dumps({"f": get_codec("msgpack").encode_frame(frame)}))
    jpeg = len(get_codec("jpeg").dumps({"f": get_codec("jpeg").encode_frame(frame)}))
    assert raw > frame.nbytes and jpeg < raw / 4


@pytest.mark.parametrize("name", ["msgpack", "jpeg", "png-base64"])
def test_step_result_round_trip_keeps_flags_reward_and_plain_info(name):
    codec = get_codec(name)
    info = {"valid_action": np.bool_(True), "turn": np.int64(2), "frames_seen": 16,
            "answer": "B", "correct": False, "spans": (np.float32(1.5), 3.0),
            "nested": {"ids": np.arange(3)}}
    result = StepResult(Observation("<image>", [_smooth_frame()], [2.5]), np.float64(0.75),
                        terminated=True, truncated=False, info=info)
    back = decode_step_result(_round_trip(codec, encode_step_result(result, codec)), codec)
    assert back.reward == 0.75 and back.terminated is True and back.truncated is False
    assert back.info == {"valid_action": True, "turn": 2, "frames_seen": 16, "answer": "B",
                         "correct": False, "spans": [1.5, 3.0], "nested": {"ids": [0, 1, 2]}}
    assert back.obs.timestamps == [2.5]


@pytest.mark.parametrize("name", ["msgpack", "jpeg", "png-base64"])
def test_a_batch_sent_in_parts_reads_back_as_one_message(name):
    codec = get_codec(name)
    frame = _smooth_frame()
    items = [{"env_id": f"e{i}", "obs": encode_observation(
        Observation("<image>", [frame], [float(i)]), codec)} for i in range(3)]
    parts = codec.dump_parts({"codec": name}, "results", items)
    assert len(parts) == 3 + (2 if name == "png-base64" else 1)
    message = loads(b"".join(parts), codec.content_type)
    assert message["codec"] == name and [r["env_id"] for r in message["results"]] == [
        "e0", "e1", "e2"]
    back = [decode_observation(r["obs"], codec) for r in message["results"]]
    assert [o.timestamps for o in back] == [[0.0], [1.0], [2.0]]
    assert all(o.frames[0].shape == frame.shape for o in back)


def test_raw_bodies_cut_short_or_padded_are_errors():
    codec = get_codec("msgpack")
    body = codec.dumps({"frames": [codec.encode_frame(_smooth_frame())]})
    assert np.array_equal(loads(body, codec.content_type)["frames"][0], _smooth_frame())
    with pytest.raises(WireError, match="body ends inside a frame of shape"):
        loads(body[:-1], codec.content_type)
    with pytest.raises(WireError, match="1 bytes left after the last record"):
        loads(body + b"x", codec.content_type)
    with pytest.raises(WireError, match="inside a record length"):
        loads(b"\x00", codec.content_type)


def test_to_plain_names_the_key_holding_an_unsendable_value():
    with pytest.raises(WireError, match=r"info\.extra\[1\] holds a object"):
        to_plain({"extra": [1, object()]}, "info")
    assert to_plain({"x": float("nan"), "y": np.float32(0.5)}) == {"x": None, "y": 0.5}


def test_bad_frames_are_rejected_with_their_dtype():
    with pytest.raises(WireError, match=r"uint8 arrays \(H, W, 3\), got a float32"):
        RawCodec().encode_frame(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(WireError, match="base64 PNG string"):
        get_codec("png-base64").decode_frame(123)
    with pytest.raises(WireError, match="not a readable image"):
        get_codec("jpeg").decode_frame(b"not a jpeg")


def test_unknown_codec_lists_the_valid_ones_and_duplicates_are_rejected():
    with pytest.raises(KeyError, match="unknown codec .*; registered: jpeg, msgpack, png-base64"):
        get_codec("gzip")
    with pytest.raises(ValueError, match="'msgpack' is already registered"):
        register_codec("msgpack")(RawCodec)


def test_loads_reports_a_corrupt_body():
    with pytest.raises(WireError, match="not valid application/msgpack"):
        loads(b"\xc1", "application/msgpack")
    with pytest.raises(WireError, match="frame must be a raw uint8 array"):
        RawCodec().decode_frame(b"raw")
    with pytest.raises(WireError, match="not valid application/json"):
        loads(b"{", "application/json")
    with pytest.raises(WireError, match="observation is missing"):
        decode_observation({"text": "x"}, get_codec("msgpack"))
