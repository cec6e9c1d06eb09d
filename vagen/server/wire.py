"""How observations and step results cross the wire between env server and client.

Control messages are plain dicts; a codec decides how frames are written and how a message
becomes bytes. `msgpack` (default) sends msgpack control data with each frame's raw uint8
bytes after it, so neither side copies or parses the pixels (no compression: on loopback,
compressing costs more than it saves); `jpeg` sends JPEG bytes in a msgpack body (smaller,
lossy); `png-base64` sends base64 PNG strings in JSON, the VAGEN-compatible layout kept as
the benchmark baseline. Codecs are registered by name."""

from __future__ import annotations

import base64
import io
import json
import math
import struct
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import msgpack
import numpy as np

from vagen.env.base import Observation, StepResult
from vagen.plain import Unplain, plain
from vagen.registry import Registry

DEFAULT_CODEC = "msgpack"
JSON_CONTENT_TYPE = "application/json"
MSGPACK_CONTENT_TYPE = "application/msgpack"
FRAMES_CONTENT_TYPE = "application/x-vagen-frames"
FRAME_EXT = 1  # msgpack extension type of a frame: its shape (3 x u32); bytes follow


class WireError(ValueError):
    """A message that cannot be encoded or decoded; the text names the offending field."""


class Codec(ABC):
    """Frames <-> wire values, and messages <-> bytes."""

    name: ClassVar[str]
    content_type: ClassVar[str]
    lossless: ClassVar[bool]

    @abstractmethod
    def encode_frame(self, frame: np.ndarray) -> Any: ...

    @abstractmethod
    def decode_frame(self, value: Any) -> np.ndarray: ...

    @abstractmethod
    def dumps(self, message: Mapping[str, Any]) -> bytes: ...

    @abstractmethod
    def dump_parts(self, head: Mapping[str, Any], key: str,
                   items: Sequence[Any]) -> list[bytes]:
        """`dumps({**head, key: items})` as pieces, one per item, that a server sends one
        after the other instead of joining a whole batch of frames into one buffer."""


_CODECS: Registry[Codec] = Registry("codec")


def register_codec(name: str) -> Callable[[type[Codec]], type[Codec]]:
    """Class decorator: `@register_codec("jpeg")` registers one instance under `name`."""

    def decorator(cls: type[Codec]) -> type[Codec]:
        _CODECS.add(name, cls())
        cls.name = name  # after add: a rejected duplicate leaves its class untouched
        return cls

    return decorator


def get_codec(name: str) -> Codec:
    return _CODECS.get(name)


def list_codecs() -> list[str]:
    return _CODECS.names()


def loads(body: bytes | bytearray, content_type: str) -> Any:
    """Parse a message body by its content type (a codec's, or JSON for errors)."""
    kind = content_type.split(";")[0].strip()
    try:
        if kind == FRAMES_CONTENT_TYPE:
            return _load_records(memoryview(body))
        if kind == MSGPACK_CONTENT_TYPE:
            return msgpack.unpackb(body, raw=False)
        return json.loads(body)
    except (ValueError, msgpack.UnpackException) as err:
        raise WireError(f"body is not valid {kind or 'JSON'}: {err}") from err


class _MsgpackBody(Codec):
    content_type = MSGPACK_CONTENT_TYPE

    def dumps(self, message: Mapping[str, Any]) -> bytes:
        return msgpack.packb(message, use_bin_type=True)

    def dump_parts(self, head: Mapping[str, Any], key: str,
                   items: Sequence[Any]) -> list[bytes]:
        packer = msgpack.Packer(use_bin_type=True)
        opening = [packer.pack_map_header(len(head) + 1),
                   *(packer.pack(k) + packer.pack(v) for k, v in head.items()),
                   packer.pack(key), packer.pack_array_header(len(items))]
        return [b"".join(opening), *(packer.pack(item) for item in items)]


class _JsonBody(Codec):
    content_type = JSON_CONTENT_TYPE

    def dumps(self, message: Mapping[str, Any]) -> bytes:
        return json.dumps(message, allow_nan=False).encode()

    def dump_parts(self, head: Mapping[str, Any], key: str,
                   items: Sequence[Any]) -> list[bytes]:
        opening = json.dumps(dict(head))[:-1] + (", " if head else "") + json.dumps(key) + ": ["
        parts = [((", " if i else "") + json.dumps(item, allow_nan=False)).encode()
                 for i, item in enumerate(items)]
        return [opening.encode(), *parts, b"]}"]


@register_codec("msgpack")
class RawCodec(Codec):
    """Exact and copy-light: msgpack control data, each frame's raw bytes after it.

    A body is a sequence of records `u32 length | msgpack header | frame bytes`; a header
    holds an extension value (type 1: H, W, C as big-endian u32) in place of each frame,
    in the order their bytes follow. The first record holds the message (or a batch's
    head with `key` and `count`), each further record one item of the batch. Decoded
    frames are views of the body (no copy)."""

    content_type = FRAMES_CONTENT_TYPE
    lossless = True

    def encode_frame(self, frame: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(_check_frame(frame))

    def decode_frame(self, value: Any) -> np.ndarray:
        if not isinstance(value, np.ndarray):
            raise WireError(f"frame must be a raw uint8 array, got {type(value).__name__}")
        return value

    def dumps(self, message: Mapping[str, Any]) -> bytes:
        return _record({"message": dict(message)})

    def dump_parts(self, head: Mapping[str, Any], key: str,
                   items: Sequence[Any]) -> list[bytes]:
        first = _record({"message": dict(head), "key": key, "count": len(items)})
        return [first, *(_record(item) for item in items)]


def _record(obj: Any) -> bytes:
    frames: list[np.ndarray] = []

    def tag_frame(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            frames.append(value)
            return msgpack.ExtType(FRAME_EXT, struct.pack(">3I", *value.shape))
        raise TypeError(f"cannot send a {type(value).__name__}")

    header = msgpack.packb(obj, default=tag_frame, use_bin_type=True)
    return b"".join([len(header).to_bytes(4, "big"), header, *(f.data for f in frames)])


def _load_records(body: memoryview) -> Any:
    offset = 0

    def frame_view(code: int, data: bytes) -> Any:
        nonlocal offset
        if code != FRAME_EXT or len(data) != 12:
            raise WireError(f"unknown msgpack extension {code} at byte {offset}")
        shape = struct.unpack(">3I", data)
        size = math.prod(shape)
        if offset + size > len(body):
            raise WireError(f"body ends inside a frame of shape {shape} at byte {offset}")
        frame = np.frombuffer(body, np.uint8, size, offset).reshape(shape)
        offset += size
        return frame

    def read_record() -> Any:
        nonlocal offset
        if offset + 4 > len(body):
            raise WireError(f"body ends inside a record length at byte {offset}")
        size = int.from_bytes(body[offset:offset + 4], "big")
        header = body[offset + 4:offset + 4 + size]
        offset += 4 + size
        return msgpack.unpackb(header, raw=False, ext_hook=frame_view)

    first = read_record()
    message = first["message"]
    if "key" in first:
        message[first["key"]] = [read_record() for _ in range(first["count"])]
    if offset != len(body):
        raise WireError(f"{len(body) - offset} bytes left after the last record")
    return message


@register_codec("jpeg")
class JpegCodec(_MsgpackBody):
    """Lossy (quality 90) but ~10x smaller than raw; for servers on another host."""

    lossless = False
    quality = 90

    def encode_frame(self, frame: np.ndarray) -> bytes:
        return _pil_bytes(_check_frame(frame), "JPEG", quality=self.quality)

    def decode_frame(self, value: Any) -> np.ndarray:
        return _pil_array(value)


@register_codec("png-base64")
class PngBase64Codec(_JsonBody):
    """VAGEN's layout: each frame a base64 PNG string inside JSON. Exact but slow."""

    lossless = True

    def encode_frame(self, frame: np.ndarray) -> str:
        return base64.b64encode(_pil_bytes(_check_frame(frame), "PNG")).decode("ascii")

    def decode_frame(self, value: Any) -> np.ndarray:
        if not isinstance(value, str):
            raise WireError(f"frame must be a base64 PNG string, got {type(value).__name__}")
        return _pil_array(base64.b64decode(value))


def encode_observation(obs: Observation, codec: Codec) -> dict[str, Any]:
    return {
        "text": obs.text,
        "frames": [codec.encode_frame(frame) for frame in obs.frames],
        "timestamps": [float(t) for t in obs.timestamps],
        "video_ids": [int(v) for v in obs.video_ids],
    }


def decode_observation(message: Any, codec: Codec) -> Observation:
    try:
        return Observation(text=str(message["text"]),
                           frames=[codec.decode_frame(f) for f in message["frames"]],
                           timestamps=[float(t) for t in message["timestamps"]],
                           video_ids=[int(v) for v in message["video_ids"]])
    except (KeyError, TypeError) as err:
        raise WireError(f"observation is missing or has a bad field: {err!r}") from err


def encode_step_result(result: StepResult, codec: Codec) -> dict[str, Any]:
    return {
        "obs": encode_observation(result.obs, codec),
        "reward": float(result.reward),
        "terminated": bool(result.terminated),
        "truncated": bool(result.truncated),
        "info": to_plain(result.info, "info"),
    }


def decode_step_result(message: Any, codec: Codec) -> StepResult:
    try:
        return StepResult(obs=decode_observation(message["obs"], codec),
                          reward=float(message["reward"]),
                          terminated=bool(message["terminated"]),
                          truncated=bool(message["truncated"]),
                          info=dict(message["info"]))
    except (KeyError, TypeError) as err:
        raise WireError(f"step result is missing or has a bad field: {err!r}") from err


def to_plain(value: Any, where: str = "value") -> Any:
    """numpy scalars/arrays and tuples -> plain Python that JSON and msgpack both carry.

    Non-finite floats become None (JSON has no NaN); anything else unknown is an error
    naming its key path, so an env's bad `info` fails loudly instead of half-encoding."""
    try:
        return plain(value, strict=True)
    except Unplain:
        path, kind = _first_unsendable(value, where)
        raise WireError(f"{path} holds a {kind}, which cannot be sent; use numbers, "
                        "strings, lists or dicts") from None


def _first_unsendable(value: Any, where: str) -> tuple[str, str]:
    """(key path, type name) of the first value `plain` rejects; only run on failure."""
    if isinstance(value, np.generic | np.ndarray):
        value = value.tolist()
    children = (value.items() if isinstance(value, Mapping) else enumerate(value)
                if isinstance(value, list | tuple) else None)
    if children is None:
        return where, type(value).__name__
    for key, item in children:
        try:
            plain(item, strict=True)
        except Unplain:
            step = f".{key}" if isinstance(value, Mapping) else f"[{key}]"
            return _first_unsendable(item, where + step)
    return where, type(value).__name__


def _check_frame(frame: Any) -> np.ndarray:
    if (not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3
            or frame.shape[2] != 3):
        got = (f"{frame.dtype} array of shape {frame.shape}" if isinstance(frame, np.ndarray)
               else type(frame).__name__)
        raise WireError(f"frames must be uint8 arrays (H, W, 3), got a {got}")
    return frame


def _pil_bytes(frame: np.ndarray, fmt: str, **options: Any) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _pil_array(data: Any) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if not isinstance(data, bytes | bytearray):
        raise WireError(f"frame must be image bytes, got {type(data).__name__}")
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as err:
        raise WireError(f"frame is not a readable image: {err}") from err
