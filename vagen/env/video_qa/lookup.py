"""Which sample an episode plays, found the way the env finds it (`seed % n` over the
group's samples, relative video paths against the samples file), and its videos' durations:
for the records eval and the trainers keep of what was played."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from vagen.data.sample import Sample
from vagen.env.video_qa.config import VideoQAConfig
from vagen.env.video_qa.env import VideoQAEnv


class SampleLookup:
    """Group config + seed -> its sample; sample -> video durations (each probed once)."""

    def __init__(self) -> None:
        self._envs: dict[str, VideoQAEnv] = {}
        self._durations: dict[str, float] = {}

    def sample(self, config: Mapping[str, Any], seed: int) -> Sample:
        key = json.dumps(dict(config), sort_keys=True)
        if key not in self._envs:
            self._envs[key] = VideoQAEnv(VideoQAConfig.from_dict(dict(config)))
        return self._envs[key].sample_for_seed(seed)

    def durations(self, sample: Sample) -> list[float]:
        """Seconds of each of the sample's videos."""
        from vagen.video.decode import probe_video

        for path in sample.videos:
            if path not in self._durations:
                self._durations[path] = probe_video(path).duration_s
        return [self._durations[path] for path in sample.videos]
