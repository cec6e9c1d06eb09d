"""The `vagen` command. Each sub-command lives in the module that owns the work; this file
only routes `vagen <command> [<sub-command>] args...` to a `main(argv) -> int` there, imported
lazily so that `vagen data synth` does not pay for importing torch."""

from __future__ import annotations

import importlib
import sys

from vagen.config import ConfigKeyError

Target = tuple[str, str]  # (module, help); the module defines main(argv) -> int

COMMANDS: dict[str, Target | dict[str, Target]] = {
    "server": {
        "run": ("vagen.server.app", "run the batched env server"),
        "wait": ("vagen.server.wait", "wait until env servers answer /health"),
    },
    "train": {
        "rl": ("vagen.trainer.local", "multi-turn RL (GRPO/PPO) with the local trainer"),
        "sft": ("vagen.trainer.sft", "SFT warm start on oracle trajectories"),
    },
    "eval": ("vagen.eval.evaluate", "score a checkpoint on a benchmark parquet"),
    "data": {
        "synth": ("vagen.data.synthetic", "write synthetic grounded video QA"),
        "create": ("vagen.env.dataset", "write train/test parquet of env rows"),
        "convert": ("vagen.data.convert", "convert a benchmark into the sample schema"),
    },
    "view": ("vagen.view.build", "write the trajectory viewer of an eval or training run"),
    "quickstart": ("vagen.quickstart", "train and evaluate the tiny model end to end"),
}
# `vagen train --config x.yaml` means `vagen train rl --config x.yaml`; likewise `server run`.
DEFAULT_SUBCOMMAND = {"train": "rl", "server": "run"}


def _usage(table: dict, prefix: str) -> str:
    lines = [f"usage: {prefix} <command> [args...]", "", "commands:"]
    for name, target in table.items():
        text = target[1] if isinstance(target, tuple) else "{" + ", ".join(target) + "}"
        lines.append(f"  {name:<12} {text}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Route argv to the owning module's `main`."""
    args = list(sys.argv[1:] if argv is None else argv)
    table: dict = COMMANDS
    prefix = "vagen"
    while isinstance(table, dict):
        command = prefix.split()[-1]
        if args and args[0] in table:
            name, args = args[0], args[1:]
        elif command in DEFAULT_SUBCOMMAND:
            name = DEFAULT_SUBCOMMAND[command]
            if args and args[0] in ("-h", "--help"):  # the table, then the default's keys
                print(_usage(table, prefix) + f"\n\n`{prefix}` alone is `{prefix} {name}`:\n")
        elif not args or args[0] in ("-h", "--help"):
            print(_usage(table, prefix))
            return 0 if args else 2
        else:
            print(f"{prefix}: unknown command '{args[0]}'; choose from: {', '.join(table)}",
                  file=sys.stderr)
            return 2
        table, prefix = table[name], f"{prefix} {name}"
    module, _ = table
    try:
        return int(importlib.import_module(module).main(args) or 0)
    except ConfigKeyError as err:  # a bad key=value or YAML key: one line, not a traceback
        print(f"{prefix}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
