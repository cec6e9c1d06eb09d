"""`vagen view RUN`: a static page of what the agent looked at, for an eval folder
(results.jsonl) or a training run (trajectories.jsonl): one HTML file and a folder of small
JPEG thumbnails, opened from disk with no server."""

from vagen.view.build import build_view, main, view_page

__all__ = ["build_view", "main", "view_page"]
