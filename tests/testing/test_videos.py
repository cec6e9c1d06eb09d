"""Test videos whose frames say which frame they are, decoded back with PyAV."""

import av
import numpy as np
import pytest

from vagen.testing.videos import MAX_FRAMES, frame_colour, frame_index, make_test_video


def _decode(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [(f.time, f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
        return stream, frames


def test_frame_colour_digits_and_inverse():
    assert frame_colour(0) == (12, 12, 12)
    assert frame_colour(1) == (37, 12, 12)
    assert frame_colour(123) == (87, 62, 37)  # units 3, tens 2, hundreds 1
    assert frame_colour(999) == (237, 237, 237)
    assert [frame_index(np.array(frame_colour(i))) for i in range(MAX_FRAMES)] == \
        list(range(MAX_FRAMES))
    assert frame_index(np.array(frame_colour(57)) + [10, -10, 8]) == 57  # codec noise


def test_video_decodes_to_frames_whose_colour_is_their_index(tmp_path):
    path = make_test_video(tmp_path / "v.mp4", duration_s=6.0, fps=4.0, size=(64, 48))
    stream, frames = _decode(path)
    assert float(stream.average_rate) == 4.0
    assert len(frames) == 24
    assert all(image.shape == (48, 64, 3) for _, image in frames)
    assert [frame_index(image) for _, image in frames] == list(range(24))
    assert [t for t, _ in frames] == pytest.approx([i / 4.0 for i in range(24)])
    worst = max(np.abs(image.astype(int) - frame_colour(i)).max()
                for i, (_, image) in enumerate(frames))
    assert worst < 12  # half the 25-level gap between neighbouring frames


def test_fractional_fps_and_default_size(tmp_path):
    _, frames = _decode(make_test_video(tmp_path / "v.mp4", duration_s=5.0, fps=2.5))
    # one frame per 0.4 s that starts before 5 s: 0, 0.4, ..., 4.8
    assert [frame_index(image) for _, image in frames] == list(range(13))
    assert frames[0][1].shape == (64, 64, 3)
    assert frames[-1][0] == pytest.approx(12 / 2.5)


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"duration_s \* fps"):
        make_test_video(tmp_path / "long.mp4", duration_s=300.0, fps=4.0)
    with pytest.raises(ValueError, match="even"):
        make_test_video(tmp_path / "odd.mp4", size=(63, 64))
    with pytest.raises(ValueError, match="outside 0..999"):
        frame_colour(1000)
