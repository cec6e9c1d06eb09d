import itertools

import numpy as np
import pytest

from vagen.env import EnvCheckError, check_env, list_envs, make_env
from vagen.env.video_qa import VideoQAConfig, VideoQAEnv
from vagen.env.video_qa.protocols import BUILT_IN


@pytest.mark.parametrize("protocol", BUILT_IN)
@pytest.mark.parametrize("seed", [0, 1])  # one video, two videos
def test_every_protocol_passes(env_config, protocol, seed):
    check_env(make_env("video_qa", env_config(protocol)), seed=seed)


def test_every_registered_env_is_known():
    assert "video_qa" in list_envs()  # other test modules register their own envs too


def test_given_actions_are_checked_too(env_config):
    env = make_env("video_qa", env_config("timestamps"))
    check_env(env, actions=["<frames>1.25,9</frames>", "<think>x</think><answer>A</answer>"])


class Broken(VideoQAEnv):
    """A video QA env with one contract broken by each subclass."""

    def __init__(self, samples_path):
        super().__init__(VideoQAConfig(data=str(samples_path), initial_frames=4,
                                       frames_per_turn=3, max_pixels=64 * 64))


class ClockReset(Broken):
    ticks = itertools.count()

    def reset(self, seed):
        obs = super().reset(seed)
        obs.text += f" (tick {next(self.ticks)})"
        return obs


class LostPlaceholder(Broken):
    def reset(self, seed):
        obs = super().reset(seed)
        obs.text = obs.text.replace("<image>", "", 1)
        return obs


class DriftingReward(Broken):
    drift = itertools.count()

    def step(self, action_text):
        result = super().step(action_text)
        result.reward += next(self.drift)
        return result


class RaisesOnGarbage(Broken):
    def step(self, action_text):
        if "</" not in action_text:
            raise ValueError("cannot parse")
        return super().step(action_text)


class ForgetsCorrect(Broken):
    def step(self, action_text):
        result = super().step(action_text)
        del result.info["correct"]
        return result


class CountsFramesAsText(Broken):
    def step(self, action_text):
        result = super().step(action_text)
        result.info["frames_seen"] = str(result.info["frames_seen"])
        return result


class ReportsNumpy(Broken):
    def step(self, action_text):
        result = super().step(action_text)
        result.info["extra_score"] = np.float32(0.5)
        return result


class NeverTruncates(Broken):
    def step(self, action_text):
        result = super().step(action_text)
        result.truncated = False
        self._episode.done = False
        return result


class ClosesOnce(Broken):
    closed = False

    def close(self):
        if self.closed:
            raise RuntimeError("already closed")
        self.closed = True


class NoPrompt:
    def reset(self, seed): ...

    def step(self, action_text): ...

    def close(self): ...


@pytest.mark.parametrize("env_class, message", [
    (ClockReset, r"reset\(0\) twice gave different observations \(texts differ at character "
                 r"\d+: .*derive every random choice from the seed"),
    (LostPlaceholder, r"reset\(0\): the text has 3 <image> placeholders but 4 frames; write "
                      r"one <image> per frame"),
    (DriftingReward, r"gave different results in two runs \(reward .*make step depend only on "
                     r"the seed and the actions"),
    (RaisesOnGarbage, r"raised ValueError\('cannot parse'\); model text must never raise: "
                      r"return a turn with valid_action=False"),
    (ForgetsCorrect, r"info lacks \['correct'\]; every env step reports valid_action, turn"),
    (CountsFramesAsText, r"info\['frames_seen'\] is '\d+'; StepInfo.frames_seen must be int"),
    (ReportsNumpy, r"info is not JSON .*report plain numbers"),
    (NeverTruncates, r"50 malformed actions did not end the episode; end it with "
                     r"truncated=True"),
    (ClosesOnce, r"close\(\) twice raised RuntimeError\('already closed'\); make close\(\) "
                 r"harmless to repeat"),
])
def test_broken_envs_fail_with_the_fix(samples_path, env_class, message):
    with pytest.raises(EnvCheckError, match=message):
        check_env(env_class(samples_path))


def test_an_object_without_the_protocol_fails():
    with pytest.raises(EnvCheckError, match=r"implement reset\(seed\), step\(action_text\), "
                                            r"system_prompt\(\) and close\(\)"):
        check_env(NoPrompt())
