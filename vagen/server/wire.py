"""How observations and step results cross the wire between env server and client.

Control messages are plain dicts; a codec decides how frames are written and how a whole
message becomes bytes. `msgpack` (default) sends frames as raw uint8 bytes with their shape
(no compression: on loopback, compressing costs more than it saves); `jpeg` sends JPEG
bytes in a msgpack body (smaller, lossy); `png-base64` sends base64 PNG strings in JSON, the
VAGEN-compatible layout kept as the benchmark baseline. Codecs are registered by name."""

from __future__ import annotations

import base64
import io
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import msgpack
import numpy as np

from vagen.env.base import Observation, StepResult

DEFAULT_CODEC = "msgpack"
JSON_CONTENT_TYPE = "application/json"
MSGPACK_CONTENT_TYPE = "application/msgpack"


class WireError(ValueError):
    """A message that cannot be encoded or decoded; the text names the offending field."""


class Codec(ABC):
    """Frames <-> wire values, and whole messages <-> bytes."""

    name: ClassVar[str]
    content_type: ClassVar[str]
    lossless: ClassVar[bool]

    @abstractmethod
    def encode_frame(self, frame: np.ndarray) -> Any: ...

    @abstractmethod
    def decode_frame(self, value: Any) -> np.ndarray: ...

    @abstractmethod
    def dumps(self, message: Mapping[str, Any]) -> bytes: ...


_CODECS: dict[str, Codec] = {}


def register_codec(name: str) -> Callable[[type[Codec]], type[Codec]]:
    """Class decorator: `@register_codec("jpeg")` registers one instance under `name`."""

    def decorator(cls: type[Codec]) -> type[Codec]:
        if name in _CODECS:
            raise ValueError(f"codec '{name}' is already registered")
        cls.name = name
        _CODECS[name] = cls()
        return cls

    return decorator


def get_codec(name: str) -> Codec:
    if name not in _CODECS:
        raise KeyError(f"unknown codec '{name}'; registered codecs: {', '.join(list_codecs())}")
    return _CODECS[name]


def list_codecs() -> list[str]:
    return sorted(_CODECS)


def loads(body: bytes, content_type: str) -> Any:
    """Parse a message body by its content type (either codec family, or a JSON error)."""
    try:
        if content_type.startswith(MSGPACK_CONTENT_TYPE):
            return msgpack.unpackb(body, raw=False)
        return json.loads(body)
    except (ValueError, msgpack.UnpackException) as err:
        raise WireError(f"body is not valid {content_type or 'JSON'}: {err}") from err


class _MsgpackBody(Codec):
    content_type = MSGPACK_CONTENT_TYPE

    def dumps(self, message: Mapping[str, Any]) -> bytes:
        return msgpack.packb(message, use_bin_type=True)


class _JsonBody(Codec):
    content_type = JSON_CONTENT_TYPE

    def dumps(self, message: Mapping[str, Any]) -> bytes:
        return json.dumps(message, allow_nan=False).encode()


@register_codec("msgpack")
class RawCodec(_MsgpackBody):
    """Exact: the frame's bytes and shape. Decoded frames are read-only views of the body."""

    lossless = True

    def encode_frame(self, frame: np.ndarray) -> dict[str, Any]:
        frame = _check_frame(frame)
        return {"shape": list(frame.shape), "data": np.ascontiguousarray(frame).data}

    def decode_frame(self, value: Any) -> np.ndarray:
        try:
            shape = tuple(int(n) for n in value["shape"])
            return np.frombuffer(value["data"], dtype=np.uint8).reshape(shape)
        except (KeyError, TypeError, ValueError) as err:
            raise WireError(f"frame is not a raw uint8 array with a shape: {err}") from err


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
    if isinstance(value, np.generic | np.ndarray):
        value = value.tolist()
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): to_plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise WireError(f"{where} holds a {type(value).__name__}, which cannot be sent; "
                    "use numbers, strings, lists or dicts")


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
