import importlib.util
import re
import sys

import av
import numpy as np
import pytest

from vagen.registry import Registry
from vagen.video import VideoError, decode_at_times, probe_video
from vagen.video import decode as decode_module
from vagen.video.decode import BACKEND_ENV, decode_video, resolve_backends
from vagen.video.sampling import frame_indices

BACKENDS = ["decord", "pyav"]
FPS, SIZE = 4.0, 64  # of the conftest videos


def keyframe_count(path) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sum(packet.is_keyframe for packet in container.demux(stream))


@pytest.mark.parametrize("backend", BACKENDS)
def test_probe_reports_rate_frames_duration_and_size(clip, backend):
    info = probe_video(clip, backend=backend)
    assert (info.fps, info.num_frames, info.duration_s) == (FPS, 24, 6.0)
    assert (info.width, info.height) == (SIZE, SIZE)
    assert info.path == str(clip)


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_time_gives_the_frame_on_screen(cut_clip, backend, frame_ids):
    assert keyframe_count(cut_clip) >= 5, "the fixture must make the decoders seek"
    # Unsorted, repeated, on frame boundaries, past both ends, sparse across keyframes.
    times = [29.9, 0.0, 0.25, 0.24, 3.0, 3.0, 12.6, 7.49, -1.0, 100.0, 27.5, 12.6]
    frames = decode_at_times(cut_clip, times, backend=backend)
    assert frames.shape == (len(times), SIZE, SIZE, 3) and frames.dtype == np.uint8
    assert frame_ids(frames) == [119, 0, 1, 0, 12, 12, 50, 29, 0, 119, 110, 50]


def test_backends_agree_within_codec_tolerance(cut_clip, frame_ids):
    times = np.linspace(0.1, 29.9, 23)
    decord_frames = decode_video(cut_clip, times, "decord")
    pyav_frames = decode_video(cut_clip, times, "pyav")
    assert decord_frames.indices.tolist() == pyav_frames.indices.tolist()
    assert decord_frames.indices.tolist() == frame_indices(times, FPS, 120).tolist()
    difference = np.abs(decord_frames.frames.astype(int) - pyav_frames.frames.astype(int))
    assert difference.max() <= 3
    assert frame_ids(decord_frames.frames) == decord_frames.indices.tolist()


def test_times_as_a_function_of_the_video(clip, frame_ids):
    decoded = decode_video(clip, lambda info: [info.duration_s / 2], "pyav")
    assert decoded.times_s.tolist() == [3.0] and frame_ids(decoded.frames) == [12]


def test_no_times_decode_nothing_but_still_probe(clip):
    assert decode_at_times(clip, []).shape == (0, SIZE, SIZE, 3)


def test_non_finite_time_is_a_value_error(clip):
    with pytest.raises(ValueError, match="finite"):
        decode_at_times(clip, [1.0, float("nan")])


@pytest.fixture(scope="module")
def bad_videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    (folder / "random.mp4").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (folder / "empty.mp4").write_bytes(b"")
    with av.open(str(folder / "audio.mp4"), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        silence = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                             layout="mono")
        silence.sample_rate = 8000
        for packet in [*stream.encode(silence), *stream.encode()]:
            container.mux(packet)
    return {"missing": folder / "missing.mp4", "random bytes": folder / "random.mp4",
            "empty": folder / "empty.mp4", "no video stream": folder / "audio.mp4"}


@pytest.mark.parametrize("backend", ["auto", *BACKENDS])
@pytest.mark.parametrize("kind", ["missing", "random bytes", "empty", "no video stream"])
def test_unreadable_video_raises_video_error_naming_the_path(bad_videos, kind, backend):
    path = bad_videos[kind]
    with pytest.raises(VideoError, match=re.escape(str(path))):
        decode_at_times(path, [0.5], backend=backend)
    with pytest.raises(VideoError, match=re.escape(str(path))):
        probe_video(path, backend=backend)


@pytest.fixture
def opened(monkeypatch):
    """Names of the backends that open a file, in order (the real readers still run)."""
    names = []
    recording = Registry("video backend")
    for name, reader in decode_module._BACKENDS.items():
        def record(path, name=name, reader=reader):
            names.append(name)
            return reader(path)
        recording.add(name, record)
    monkeypatch.setattr(decode_module, "_BACKENDS", recording)
    return names


def test_auto_uses_pyav(clip, opened):
    decode_at_times(clip, [1.0])
    assert opened == ["pyav"]


def test_env_var_forces_a_backend_and_an_argument_beats_it(clip, opened, monkeypatch):
    monkeypatch.setenv(BACKEND_ENV, "pyav")
    decode_at_times(clip, [1.0])
    decode_at_times(clip, [1.0], backend="decord")
    assert opened == ["pyav", "decord"]


def test_auto_falls_back_to_decord_when_pyav_fails(clip, opened, monkeypatch, frame_ids):
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` now fails
    assert frame_ids(decode_at_times(clip, [2.0])) == [8]
    assert opened == ["pyav", "decord"]


def test_forced_backend_does_not_fall_back(clip, opened, monkeypatch):
    monkeypatch.setitem(sys.modules, "decord", None)
    with pytest.raises(VideoError, match=rf"{re.escape(str(clip))}.*decord.*install"):
        decode_at_times(clip, [2.0], backend="decord")
    assert opened == ["decord"]


def test_unknown_backend_lists_the_valid_ones(monkeypatch):
    with pytest.raises(ValueError, match="'ffmpeg' .*auto, decord, pyav"):
        resolve_backends("ffmpeg")
    monkeypatch.setenv(BACKEND_ENV, "gpu")
    with pytest.raises(ValueError, match=f"'gpu' \\(from {BACKEND_ENV}\\)"):
        resolve_backends()


@pytest.mark.skipif(importlib.util.find_spec("torchcodec") is not None,
                    reason="torchcodec is installed")
def test_torchcodec_when_not_installed_says_so(clip):
    with pytest.raises(VideoError, match="torchcodec.*install"):
        decode_at_times(clip, [1.0], backend="torchcodec")


@pytest.mark.skipif(importlib.util.find_spec("torchcodec") is None,
                    reason="torchcodec is optional")
def test_torchcodec_gives_the_same_frames(cut_clip, frame_ids):
    times = [0.0, 7.49, 12.6, 29.9]
    frames = decode_at_times(cut_clip, times, backend="torchcodec")
    assert frame_ids(frames) == [0, 29, 50, 119]
