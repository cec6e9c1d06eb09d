"""The action protocols: how the policy answers or asks for frames. Each protocol is one
module that registers one `Protocol` (spec.py); the env, prompts, oracle, stop strings,
metrics and the tiny tokenizer read it from the registry, so adding a protocol is one file
(docs/extending.md): a module in this folder, or one in another package that declares it
under the `vagen.protocols` entry-point group. On import every module here registers,
the built-in ones first in `BUILT_IN` order (which fixes the tiny tokenizer's tag ids),
then the others here by name, then the entry points'."""

import pkgutil
from importlib import import_module
from importlib.metadata import entry_points

from vagen.env.video_qa.protocols.reading import ActionError, parse_action
from vagen.env.video_qa.protocols.spec import (
    Action,
    FrameRequest,
    Protocol,
    ProtocolText,
    RequestPart,
    VideoLayout,
    action_tags,
    get_protocol,
    protocol_names,
    protocols,
    register_protocol,
    request_actions,
    stop_strings,
)

BUILT_IN = ("retrieve", "query", "timestamps", "single")
ENTRY_POINT_GROUP = "vagen.protocols"
_MACHINERY = ("reading", "spec")  # modules here that hold no protocol


def _register_all() -> None:
    here = sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in _MACHINERY)
    for name in [*BUILT_IN, *(name for name in here if name not in BUILT_IN)]:
        import_module(f"{__name__}.{name}")
    for point in entry_points(group=ENTRY_POINT_GROUP):
        point.load()  # importing the module registers its protocol


_register_all()

__all__ = ["Action", "ActionError", "FrameRequest", "Protocol", "ProtocolText", "RequestPart",
           "VideoLayout", "action_tags", "get_protocol", "parse_action", "protocol_names",
           "protocols", "register_protocol", "request_actions", "stop_strings"]
