"""Video frames for the envs: decoding (PyAV, decord fallback), the cached frame pool of
each video, the pool's time arithmetic, and MP4 writing for synthetic data and tests."""

from vagen.video.decode import VideoError, VideoInfo, decode_at_times, probe_video
from vagen.video.pool import (
    FramePool,
    PoolConfig,
    clear_pool_cache,
    get_pool,
    pool_cache_stats,
)
from vagen.video.sampling import frame_indices, pool_times, uniform_indices

__all__ = [
    "FramePool",
    "PoolConfig",
    "VideoError",
    "VideoInfo",
    "clear_pool_cache",
    "decode_at_times",
    "frame_indices",
    "get_pool",
    "pool_cache_stats",
    "pool_times",
    "probe_video",
    "uniform_indices",
]
