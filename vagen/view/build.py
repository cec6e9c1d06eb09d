"""Records (eval results or kept training trajectories) -> RUN/view/index.html and
RUN/view/thumbs/*.jpg. Frames are stored as times in the records; the thumbnails are cut
from the frame pool each record names (the frames the policy was shown; a frame decoded at
an exact time shows as its nearest pool frame), each distinct frame once."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from vagen.data.sample import duration_bucket
from vagen.view.page import render

VIEW_DIR = "view"
PAGE_FILE = "index.html"
THUMBS_DIR = "thumbs"
THUMB_SIDE = 80  # pixels of a thumbnail's longer side
THUMB_QUALITY = 70
SOURCES = ("results.jsonl", "trajectories.jsonl")  # an eval folder, a training run


class ViewError(ValueError):
    """A run folder the viewer cannot read; the message names the folder or file."""


def view_page(run: str | Path) -> Path:
    """Where `build_view(run)` writes the page."""
    return Path(run) / VIEW_DIR / PAGE_FILE


def build_view(run: str | Path, out: str | Path | None = None) -> Path:
    """Write the viewer of run folder `run` (default: `run/view/`); returns index.html."""
    run = Path(run)
    source = next((run / name for name in SOURCES if (run / name).exists()), None)
    if source is None:
        raise ViewError(f"{run}: no {' or '.join(SOURCES)}; give an eval folder (vagen eval "
                        "--out) or a training run folder (out_dir)")
    out = Path(out) if out else run / VIEW_DIR
    records = [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
    thumbs = Thumbnails(out / THUMBS_DIR)
    episodes = [episode(record, thumbs) for record in records]
    page = out / PAGE_FILE
    page.write_text(render({"run": str(run.resolve()), "kind": source.stem,
                            "episodes": episodes}))
    return page


class Thumbnails:
    """One JPEG per distinct pool frame, named by its video, pool and index."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.written = 0

    def frames(self, video: Mapping[str, Any], pool: Mapping[str, Any],
               times: Iterable[float]) -> list[str]:
        """Paths (relative to the page) of the thumbnails of `video`'s frames at `times`."""
        from vagen.video.pool import PoolConfig, get_pool

        pool_config = PoolConfig(**pool)
        frame_pool = get_pool(video["path"], pool_config)
        names = []
        for index in frame_pool.at_times(list(times)):
            key = json.dumps([video["path"], sorted(pool.items()), int(index)])
            name = hashlib.sha1(key.encode()).hexdigest()[:16] + ".jpg"
            path = self.folder / name
            if not path.exists():
                self._write(frame_pool.frames[index], path)
            names.append(f"{THUMBS_DIR}/{name}")
        return names

    def _write(self, frame: Any, path: Path) -> None:
        from PIL import Image

        image = Image.fromarray(frame)
        image.thumbnail((THUMB_SIDE, THUMB_SIDE))
        image.save(path, "JPEG", quality=THUMB_QUALITY)
        self.written += 1


def episode(record: Mapping[str, Any], thumbs: Thumbnails) -> dict[str, Any]:
    """What the page shows of one record: its table row and its panel."""
    steps = record.get("steps") or []
    status = ("failed" if record.get("failed") else "correct" if record.get("correct")
              else "invalid" if any(not s["valid"] for s in steps) else "wrong")
    row = {key: record.get(key) for key in (
        "id", "step", "group", "source", "category", "duration_s", "question", "options",
        "answer", "prediction", "reward", "turns", "frames_viewed", "visual_tokens",
        "error", "relevant_spans")}
    row.update(status=status, bucket=duration_bucket(record.get("duration_s")),
               invalid_actions=sum(not s["valid"] for s in steps),
               videos=[{"name": Path(v["path"]).name, "duration_s": v["duration_s"]}
                       for v in record.get("videos") or []])
    if record.get("failed") or "opening" not in record:
        return {**row, "views": [], "steps": []}
    # turn k saw view k-1: the opening, then what each step but the last returned
    shown = [record["opening"], *(s["shown"] for s in steps[:-1])]
    row["views"] = [_frames(record, view, thumbs) for view in shown]
    row["steps"] = [{key: s[key] for key in ("response", "action", "valid", "error",
                                             "requested", "reward", "reward_parts",
                                             "feedback")} for s in steps]
    return row


def _frames(record: Mapping[str, Any], view: Mapping[str, Any], thumbs: Thumbnails
            ) -> list[dict[str, Any]]:
    """The frames of one observation, each with its time, video and thumbnail."""
    by_video: dict[int, list[int]] = {}
    for position, video in enumerate(view["videos"]):
        by_video.setdefault(video, []).append(position)
    sources: dict[int, str] = {}
    for video, positions in by_video.items():
        names = thumbs.frames(record["videos"][video], record["pool"],
                              [view["times"][p] for p in positions])
        sources.update(zip(positions, names, strict=True))
    return [{"t": t, "v": v, "src": sources[i]}
            for i, (t, v) in enumerate(zip(view["times"], view["videos"], strict=True))]


def main(argv: list[str] | None = None) -> int:
    """`vagen view RUN [--out DIR]`."""
    parser = argparse.ArgumentParser(prog="vagen view", description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="an eval folder or a training run folder")
    parser.add_argument("--out", type=Path, help="where to write the page (default RUN/view)")
    args = parser.parse_args(argv)
    try:
        page = build_view(args.run, args.out)
    except (ViewError, OSError, ValueError) as err:
        print(f"vagen view: error: {err}", file=sys.stderr)
        return 2
    print(f"trajectory viewer: {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
