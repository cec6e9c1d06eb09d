"""`vagen`'s help: each dataclass-configured command lists its keys, dotted, with type,
default and help text, generated from the dataclasses."""

from __future__ import annotations

import pytest

from vagen.cli import main


@pytest.mark.parametrize("argv, keys, first_line", [
    (["train", "--help"], ["optim.lr (float, default 1e-05)", "sampling.temperature (float",
                           "envs.max_failed_share (float, default 0.05)"], "The local trainer"),
    (["train", "sft", "--help"], ["lr_schedule (str, default 'constant')",
                                  "model.lora_rank (int, default 0)"], "SFT warm start"),
    (["quickstart", "--help"], ["sft_steps (int, default 1400)"], "`vagen quickstart`"),
    (["eval", "--help"], ["--batch-size BATCH_SIZE", "(int, default 8)", "--retry-failed",
                          "--set KEY=VALUE [KEY=VALUE ...]"], "`vagen eval`"),
    (["data", "synth", "--help"], ["--pool-max-frames POOL_MAX_FRAMES", "(int, default 64)",
                                   "--absolute-paths"], "Write synthetic grounded video QA"),
    (["data", "convert", "--help"], ["--no-check-videos", "--source SOURCE",
                                     "(str | None)"], "Convert a benchmark"),
])
def test_help_lists_the_config_keys(argv, keys, first_line, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for key in keys:
        assert key in out
    assert first_line in out


def test_every_key_of_the_trainer_is_listed(capsys):
    from vagen.config import config_keys
    from vagen.trainer.local import TrainConfig

    with pytest.raises(SystemExit):
        main(["train", "rl", "--help"])
    out = capsys.readouterr().out
    keys = [key for key, *_ in config_keys(TrainConfig)]
    assert len(keys) > 40 and all(f"  {key} (" in out for key in keys)


def test_flags_come_from_the_dataclass_and_pass_only_what_was_given():
    import argparse
    from dataclasses import dataclass, field

    from vagen.config import add_flags, flag_values

    @dataclass
    class Options:
        name: str = field(default="x", metadata={"help": "a name"})
        check: bool = field(default=True, metadata={"help": "check it"})
        tags: list[str] = field(default_factory=list, metadata={"help": "tags"})
        limit: int | None = field(default=None, metadata={"help": "at most"})

    parser = argparse.ArgumentParser()
    add_flags(parser, Options)
    args = parser.parse_args(["--no-check", "--tags", "a", "--tags", "b", "--limit", "3"])
    assert flag_values(args, Options) == {"check": False, "tags": ["a", "b"], "limit": 3}
    assert Options(**flag_values(parser.parse_args([]), Options)) == Options()


@pytest.mark.parametrize("argv, flags", [
    (["server", "--help"], ["--workers WORKERS", "(int, default 4)", "--data-root DIR"]),
    (["server", "wait", "--help"], ["--timeout TIMEOUT", "(float, default 120.0)"]),
    (["data", "create", "--help"], ["--format {vagen,verltool}", "--groups GROUPS"]),
])
def test_every_command_lists_its_flags_with_type_and_default(argv, flags, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    out = capsys.readouterr().out
    assert all(flag in out for flag in flags), out
