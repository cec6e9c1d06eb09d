"""Cold pools built in worker processes: the same pools as in-thread builds, in the shared
cache, with a bad or crashing video failing alone and no process outliving its parent."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

from vagen.video import VideoError, clear_pool_cache, get_pool, pool_cache_stats
from vagen.video.pool import PoolConfig, build_pool
from vagen.video.pool_processes import PoolProcesses, prefetch_pools, use_pool_processes

CRASH_MARK = "crash"  # a video whose path holds this kills the process building its pool


def build_or_crash(path: str, config: PoolConfig) -> object:
    """`build_pool`, except that it kills its process on a `CRASH_MARK` video, as a decoder
    segfault or the OOM killer would (module level: the processes import it)."""
    if CRASH_MARK in Path(path).name:
        os._exit(11)
    return build_pool(path, config)


def test_a_pool_built_in_a_process_is_the_in_thread_pool(ten_s_clip):
    with PoolProcesses(2) as processes:
        pool = processes.build(str(ten_s_clip), PoolConfig())
    expected = build_pool(ten_s_clip)
    np.testing.assert_array_equal(pool.frames, expected.frames)
    np.testing.assert_array_equal(pool.timestamps, expected.timestamps)
    assert pool.info == expected.info and pool.config == expected.config
    assert not pool.frames.flags.writeable  # shared through the cache like any pool


def test_a_broken_video_raises_its_video_error_from_the_process(tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 100)
    with PoolProcesses(1) as processes, pytest.raises(VideoError, match="broken.mp4"):
        processes.build(str(broken), PoolConfig())


def test_a_crashing_video_fails_alone_and_the_processes_go_on(clip, ten_s_clip, tmp_path):
    crashing = tmp_path / f"{CRASH_MARK}.mp4"
    crashing.write_bytes(Path(clip).read_bytes())
    paths = [str(clip), str(crashing), str(ten_s_clip), str(clip)]
    results: dict[int, object] = {}

    def build(i: int) -> None:
        try:
            results[i] = len(processes.build(paths[i], PoolConfig()))
        except VideoError as err:
            results[i] = str(err)

    # one process: the builds queue for it, so some wait while it dies (daemon threads: a
    # build left waiting forever fails the test instead of hanging it)
    with PoolProcesses(1, build=build_or_crash) as processes:
        threads = [threading.Thread(target=build, args=(i,), daemon=True)
                   for i in range(len(paths))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert results.pop(1).endswith(f"{CRASH_MARK}.mp4: the decoding process died on this "
                                       "video (a decoder crash, or killed for memory)")
        assert results == {0: 6, 2: 10, 3: 6}  # built despite the crash
        assert len(processes.build(str(clip), PoolConfig())) == 6  # later builds still run


def test_get_pool_builds_in_processes_while_they_are_in_use(clip):
    import multiprocessing

    processes = use_pool_processes(2)
    try:
        pool = get_pool(clip)
        assert multiprocessing.active_children()  # the build ran in a decoding process
        assert pool_cache_stats()["misses"] == 1 and get_pool(clip) is pool  # then cached
    finally:
        use_pool_processes(0)
        processes.close()
    assert not multiprocessing.active_children()
    clear_pool_cache()
    assert len(get_pool(clip)) == 6  # back to building in this thread


def test_prefetched_pools_equal_decoded_ones_and_serve_as_cache_hits(ten_s_clip, clip,
                                                                      tmp_path):
    missing = tmp_path / "gone.mp4"
    assert prefetch_pools([ten_s_clip, clip, ten_s_clip, missing], workers=2) == 2
    assert pool_cache_stats()["entries"] == 2
    served = get_pool(ten_s_clip)
    assert pool_cache_stats()["hits"] == 1  # no second decode
    np.testing.assert_array_equal(served.frames, build_pool(ten_s_clip).frames)
    assert not served.frames.flags.writeable
    assert prefetch_pools([ten_s_clip], workers=2) == 0  # cached already
    with pytest.raises(VideoError, match="gone.mp4"):
        get_pool(missing)  # left for get_pool, which names it


def test_processes_count_must_be_positive():
    with pytest.raises(ValueError, match="processes must be >= 1"):
        PoolProcesses(0)
    with pytest.raises(ValueError, match="processes must be >= 0"):
        use_pool_processes(-1)
