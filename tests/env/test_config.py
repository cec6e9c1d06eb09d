from dataclasses import fields

import pytest

from vagen.env import make_env
from vagen.env.video_qa import ConfigError, VideoQAConfig


def test_defaults_are_the_design_values():
    config = VideoQAConfig()
    assert (config.protocol, config.max_turns, config.initial_frames, config.frames_per_turn,
            config.pool_fps, config.pool_max_frames, config.window) == ("retrieve", 3, 16, 8,
                                                                        1.0, 64, 2)


def test_every_field_has_a_help_text():
    assert all(f.metadata.get("help") for f in fields(VideoQAConfig))


def test_numbers_from_yaml_are_accepted_as_floats():
    config = VideoQAConfig.from_dict({"pool_fps": 2, "format_penalty": 0})
    assert config.pool_fps == 2.0 and isinstance(config.pool_fps, float)


@pytest.mark.parametrize("values, message", [
    ({"max_turn": 3}, "unknown key 'max_turn'; valid keys: name, env, protocol"),
    ({"protocol": "grab"}, "key 'protocol' is 'grab'; use one of retrieve, query, timestamps"),
    ({"max_turns": "3"}, "key 'max_turns' must be int, got '3'"),
    ({"max_turns": True}, "key 'max_turns' must be int"),
    ({"pool_fps": 0}, "key 'pool_fps' must be > 0"),
    ({"frames_per_turn": 0}, "key 'frames_per_turn' must be >= 1"),
    ({"seed": -1}, "key 'seed' must be >= 0"),
    ({"data": ""}, "key 'data' is empty"),
    ({"protocol": "single"}, "key 'max_turns' is 3 but protocol 'single' plays one turn; set "
                             "max_turns: 1"),
    ({"max_turns": 1}, "key 'max_turns' is 1 but protocol 'retrieve' needs >= 2 turns"),
    ({"initial_frames": 80}, "key 'initial_frames' is 80 but the pool holds at most "
                             "pool_max_frames=64"),
    ({"min_pixels": 10**6}, "key 'min_pixels' is 1000000 > max_pixels=200704"),
    ({"retrieve_units": "frames"}, "key 'retrieve_units' is 'frames'; use one of index, seconds"),
    ({"rewards": {}}, "key 'rewards' is empty"),
    ({"rewards": {"accuracy": 1.0}}, "unknown reward 'accuracy'; valid: action_set, choice"),
    ({"rewards": {"choice": "high"}}, "weight of 'choice' must be a number"),
    ({"invalid_reward": "format", "rewards": {"choice": 1.0}},
     "key 'invalid_reward' is 'format' but rewards has no 'format' weight"),
])
def test_config_errors_name_the_group_and_key(values, message):
    with pytest.raises(ConfigError) as err:
        VideoQAConfig.from_dict({"name": "g1", **values})
    assert str(err.value).startswith("env group 'g1': ")
    assert message in str(err.value)


def test_missing_data_file_names_the_key_and_the_fix(tmp_path):
    with pytest.raises(ConfigError, match=r"key 'data' names .*nothing\.jsonl.*vagen data synth"):
        make_env("video_qa", {"data": str(tmp_path / "nothing.jsonl")})


def test_split_without_samples_is_an_error(tmp_path):
    from vagen.data import Sample, save_samples

    path = save_samples([Sample(id="s", videos=["a.mp4"], question="q?", answer="x",
                                answer_type="text", extra={"split": "train"})],
                        tmp_path / "s.jsonl")
    with pytest.raises(ConfigError, match=r"key 'split' is 'test' .* \(splits: \['train'\]\)"):
        make_env("video_qa", {"data": str(path), "split": "test"})
    env = make_env("video_qa", {"data": str(path), "split": "train"})
    assert [s.id for s in env.samples] == ["s"]
    assert env.samples[0].videos == [str(tmp_path / "a.mp4")]  # relative to the samples file


@pytest.mark.parametrize("row, message", [
    ({"answer": "", "options": ["x", "y"]}, r"sample s: field 'answer' '' names none of its 2 "
                                            r"options \(unanswered rows: convert with "
                                            r"--answered-only\)"),
    ({"answer": "A", "options": ["x", "y"], "relevant_spans": [[1, 2, 1]]},
     r"sample s: field 'relevant_spans' has \[1(\.0)?, 2(\.0)?, 1\], but video indices run 0-0"),
])
def test_unplayable_samples_fail_when_the_env_is_made(tmp_path, row, message):
    from vagen.data import Sample, SampleError, save_samples

    path = save_samples([Sample(id="s", videos=["a.mp4"], question="q?", **row)],
                        tmp_path / "s.jsonl")
    with pytest.raises(SampleError, match=message):
        make_env("video_qa", {"data": str(path)})
