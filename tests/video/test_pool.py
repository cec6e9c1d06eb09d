import dataclasses
import os
import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from vagen.video import (
    PoolConfig,
    VideoError,
    clear_pool_cache,
    get_pool,
    pool_cache_stats,
    pool_times,
)
from vagen.video.pool import (
    CACHE_BYTES_ENV,
    MAX_ASPECT_RATIO,
    PoolCache,
    build_pool,
    cache_budget_from_env,
    smart_resize,
)

POOL_BYTES = 10 * 56 * 56 * 3 + 10 * 8  # the 1 fps pool of `ten_s_clip`: 10 frames of 56x56


@pytest.fixture
def pool(ten_s_clip):
    """Timestamps 0.5, 1.5, ..., 9.5 s."""
    return get_pool(ten_s_clip)


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_pool_frames_sit_at_pool_times(ten_s_clip, frame_ids, backend):
    pool = get_pool(ten_s_clip, PoolConfig(backend=backend))
    assert pool.path == str(ten_s_clip) and pool.duration_s == 10.0 and len(pool) == 10
    np.testing.assert_array_equal(pool.timestamps, pool_times(10.0, 1.0, 64))
    assert pool.frames.shape == (10, 56, 56, 3) and pool.frames.dtype == np.uint8
    # Video frame floor(t * 4 fps) for t = 0.5, 1.5, ...
    assert frame_ids(pool.frames) == [2, 6, 10, 14, 18, 22, 26, 30, 34, 38]


def test_long_video_pool_is_capped_and_spread_evenly(cut_clip, frame_ids):
    pool = get_pool(cut_clip, PoolConfig(pool_max_frames=8))
    np.testing.assert_allclose(pool.timestamps, (np.arange(8) + 0.5) * 30 / 8)
    assert frame_ids(pool.frames) == [7, 22, 37, 52, 67, 82, 97, 112]


def test_pool_fps_sets_the_spacing(clip, frame_ids):
    pool = get_pool(clip, PoolConfig(pool_fps=2.0))
    np.testing.assert_allclose(pool.timestamps, np.arange(12) * 0.5 + 0.25)
    assert frame_ids(pool.frames) == list(range(1, 24, 2))


@pytest.mark.parametrize(("settings", "size"), [
    ({}, 56),  # 64 rounds to the nearest multiple of 28
    ({"max_pixels": 28 * 28}, 28),  # shrunk to fit
    ({"min_pixels": 112 * 112}, 112),  # grown to fit
    ({"image_factor": 32}, 64),  # Qwen3-VL's factor keeps 64
])
def test_frames_take_the_smart_resize_size(clip, frame_ids, settings, size):
    pool = get_pool(clip, PoolConfig(**settings))
    assert pool.frames.shape == (6, size, size, 3)
    assert frame_ids(pool.frames) == [2, 6, 10, 14, 18, 22]


def test_uniform(pool):
    assert pool.uniform(4) == [1, 3, 6, 8]
    assert pool.uniform(1) == [5]
    assert pool.uniform(25) == list(range(10))
    assert pool.uniform(0) == []


def test_in_span(pool):
    assert pool.in_span(2, 6, 8) == [2, 3, 4, 5]  # frames at 2.5 .. 5.5 s
    assert pool.in_span(2, 6, 2) == [3, 5]  # two of those four, spread
    assert pool.in_span(2.5, 3.5, 8) == [2, 3]  # both ends included
    assert pool.in_span(8, 100, 8) == [8, 9]  # the part inside the video
    assert pool.in_span(-5, 0.4, 3) == []  # before the first frame
    assert pool.in_span(50, 60, 3) == []  # after the video
    assert pool.in_span(4.6, 5.4, 3) == []  # between two pool frames
    assert pool.in_span(0, 10, 30) == list(range(10))


def test_in_indices(pool):
    assert pool.in_indices(2, 5, 8) == [2, 3, 4, 5]
    assert pool.in_indices(0, 9, 3) == [1, 5, 8]
    assert pool.in_indices(7, 50, 8) == [7, 8, 9]
    assert pool.in_indices(-3, 1, 8) == [0, 1]
    assert pool.in_indices(4, 4, 8) == [4]
    assert pool.in_indices(12, 20, 2) == []


def test_at_times_gives_the_nearest_frame(pool):
    # 1.0 is as near 0.5 as 1.5: the earlier frame wins.
    assert pool.at_times([0.0, 0.5, 1.0, 1.01, 4.2, 100.0, -3.0]) == [0, 0, 0, 1, 4, 9, 0]
    assert pool.at_times([]) == []


def test_times_of(pool):
    assert pool.times_of([0, 9, 3]) == [0.5, 9.5, 3.5]
    with pytest.raises(IndexError, match="pool index 10 out of range for 10 frames"):
        pool.times_of([10])


@pytest.mark.parametrize(("call", "message"), [
    (lambda p: p.in_span(6, 2, 3), r"start_s \(6\) > end_s \(2\)"),
    (lambda p: p.in_indices(5, 2, 3), r"start_idx \(5\) > end_idx \(2\)"),
    (lambda p: p.in_span(float("nan"), 2, 3), "start_s must be finite"),
    (lambda p: p.uniform(-1), "k must be an integer >= 0"),
    (lambda p: p.in_span(0, 2, 2.5), "k must be an integer >= 0"),
    (lambda p: p.at_times([float("inf")]), "finite"),
])
def test_bad_requests_raise_value_errors_that_say_what_is_wrong(pool, call, message):
    with pytest.raises(ValueError, match=message):
        call(pool)


def test_decode_exact_matches_the_pool_frame_size(pool, frame_ids):
    frames = pool.decode_exact([1.3, 7.9])
    assert frames.shape == (2, 56, 56, 3)
    assert frame_ids(frames) == [5, 31]


def test_cached_frames_are_read_only(pool):
    with pytest.raises(ValueError, match="read-only"):
        pool.frames[0, 0, 0, 0] = 1


def test_second_get_is_a_cache_hit(ten_s_clip):
    first = get_pool(ten_s_clip)
    assert get_pool(str(ten_s_clip)) is first
    assert pool_cache_stats() == {"entries": 1, "bytes": POOL_BYTES,
                                  "budget_bytes": 2 * 1024**3, "hits": 1, "misses": 1}


def test_relative_and_absolute_paths_share_an_entry(ten_s_clip, monkeypatch):
    monkeypatch.chdir(ten_s_clip.parent)
    assert get_pool(ten_s_clip.name) is get_pool(ten_s_clip)


def test_each_pool_setting_is_its_own_entry(ten_s_clip):
    assert get_pool(ten_s_clip) is not get_pool(ten_s_clip, PoolConfig(pool_fps=0.5))
    assert pool_cache_stats()["entries"] == 2


def test_edited_file_is_decoded_again(tmp_path, make_video, frame_ids):
    path = make_video(tmp_path / "edited.mp4", 6)
    before = get_pool(path)
    mtime = os.stat(path).st_mtime_ns
    make_video(path, 6, shift=50)
    os.utime(path, ns=(mtime + 10**9, mtime + 10**9))  # a later mtime even on coarse clocks
    after = get_pool(path)
    assert frame_ids(before.frames) == [2, 6, 10, 14, 18, 22]
    assert frame_ids(after.frames) == [52, 56, 60, 64, 68, 72]
    stats = pool_cache_stats()
    assert (stats["misses"], stats["entries"]) == (2, 1)  # the stale pool is dropped


def test_least_recently_used_pool_is_evicted_under_the_budget(tmp_path, ten_s_clip):
    a, b, c = (shutil.copy(ten_s_clip, tmp_path / f"{name}.mp4") for name in "abc")
    clear_pool_cache(budget_bytes=int(2.5 * POOL_BYTES))
    get_pool(a), get_pool(b), get_pool(a), get_pool(c)  # b is the least recently used
    assert pool_cache_stats()["entries"] == 2 and pool_cache_stats()["bytes"] == 2 * POOL_BYTES
    get_pool(a)
    assert pool_cache_stats()["misses"] == 3  # a stayed
    get_pool(b)
    assert pool_cache_stats()["misses"] == 4  # b was evicted


def test_pool_over_the_whole_budget_is_served_but_not_kept(ten_s_clip):
    clear_pool_cache(budget_bytes=POOL_BYTES - 1)
    assert len(get_pool(ten_s_clip)) == 10
    assert pool_cache_stats()["entries"] == 0 and pool_cache_stats()["bytes"] == 0


def _wait_for(condition, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.001)


def test_concurrent_requests_for_a_cold_video_decode_it_once(clip):
    cache, pool, builds = PoolCache(budget_bytes=10**9), build_pool(clip), []

    def build():
        builds.append(1)
        _wait_for(lambda: cache.stats()["hits"] == 7)  # every other thread is waiting
        return pool

    with ThreadPoolExecutor(8) as workers:
        results = list(workers.map(lambda _: cache.get(("v.mp4", 1, 1), build), range(8)))
    assert len(builds) == 1 and all(result is pool for result in results)
    assert cache.stats()["misses"] == 1


def test_a_failed_build_reaches_every_waiter_and_is_not_cached():
    cache = PoolCache(budget_bytes=10**9)

    def build():
        _wait_for(lambda: cache.stats()["hits"] == 3)
        raise VideoError("v.mp4: broken")

    def get(_):
        with pytest.raises(VideoError, match="v.mp4: broken"):
            cache.get(("v.mp4", 1, 1), build)

    with ThreadPoolExecutor(4) as workers:
        list(workers.map(get, range(4)))
    get(None)
    assert cache.stats()["misses"] == 2 and cache.stats()["entries"] == 0


def test_threads_share_one_pool_through_get_pool(ten_s_clip):
    with ThreadPoolExecutor(4) as workers:
        pools = list(workers.map(lambda _: get_pool(ten_s_clip), range(8)))
    assert all(p is pools[0] for p in pools) and pool_cache_stats()["misses"] == 1


def test_missing_video_names_the_path(tmp_path):
    path = tmp_path / "gone.mp4"
    with pytest.raises(VideoError, match=re.escape(str(path))):
        get_pool(path)
    assert pool_cache_stats()["misses"] == 0


def test_corrupt_video_names_the_path_and_is_not_cached(tmp_path):
    path = tmp_path / "noise.mp4"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 2048, dtype=np.uint8).tobytes())
    for _ in range(2):
        with pytest.raises(VideoError, match=re.escape(str(path))):
            get_pool(path)
    assert pool_cache_stats()["misses"] == 2 and pool_cache_stats()["entries"] == 0


@pytest.mark.parametrize(("text", "budget"), [
    ("1000", 1000), ("512M", 512 * 1024**2), ("1.5G", 3 * 1024**3 // 2), ("64kib", 65536),
])
def test_cache_budget_from_env(monkeypatch, text, budget):
    monkeypatch.setenv(CACHE_BYTES_ENV, text)
    assert cache_budget_from_env() == budget
    clear_pool_cache()
    assert pool_cache_stats()["budget_bytes"] == budget


def test_bad_cache_budget_names_the_variable(monkeypatch):
    monkeypatch.setenv(CACHE_BYTES_ENV, "lots")
    with pytest.raises(ValueError, match=f"{CACHE_BYTES_ENV}='lots'"):
        cache_budget_from_env()


@pytest.mark.parametrize(("settings", "key"), [
    ({"pool_fps": 0}, "pool_fps"),
    ({"pool_max_frames": 0}, "pool_max_frames"),
    ({"pool_max_frames": 2.5}, "pool_max_frames"),
    ({"min_pixels": 0}, "min_pixels"),
    ({"max_pixels": 100, "min_pixels": 50}, "max_pixels"),  # below 28 * 28
    ({"max_pixels": 28 * 28, "min_pixels": 56 * 56}, "max_pixels"),
    ({"image_factor": 0}, "image_factor"),
    ({"backend": "ffmpeg"}, "backend"),
])
def test_bad_pool_config_names_the_key(settings, key):
    with pytest.raises(ValueError, match=f"PoolConfig.{key}"):
        PoolConfig(**settings)


def test_every_pool_config_field_has_help():
    assert all(f.metadata.get("help") for f in dataclasses.fields(PoolConfig))


@pytest.mark.parametrize("factor", [28, 32])
@pytest.mark.parametrize(("min_pixels", "max_pixels"), [(28 * 28, 448 * 448),
                                                        (112 * 112, 256 * 28 * 28),
                                                        (4 * 28 * 28, 16384 * 28 * 28)])
def test_smart_resize_is_qwen_vl_utils_rule(factor, min_pixels, max_pixels):
    """The pool's frame size must be the one qwen-vl-utils (and so every Qwen-VL recipe)
    computes, for small, camera-sized and elongated frames."""
    from qwen_vl_utils import smart_resize as theirs

    sides = [1, 13, 27, 28, 42, 64, 97, 240, 360, 480, 719, 720, 1080, 1920, 3840]
    for height in sides:
        for width in sides:
            if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
                continue
            assert smart_resize(height, width, factor, min_pixels, max_pixels) == theirs(
                height, width, factor=factor, min_pixels=min_pixels,
                max_pixels=max_pixels), (height, width)


def test_a_too_elongated_video_is_a_video_error(tmp_path):
    from vagen.video.encode import write_mp4

    strip = write_mp4(tmp_path / "strip.mp4", [np.zeros((2, 512, 3), np.uint8)] * 4, fps=4.0)
    with pytest.raises(VideoError, match="strip.mp4: absolute aspect ratio"):
        build_pool(strip)
