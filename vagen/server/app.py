"""The env server over HTTP: Flask handlers that check a request, call the `EnvService`
and encode its slots with the requested codec. Served by waitress (threads); Flask's own
server only with `--debug`.

Endpoints, each batched over env ids. Bodies are JSON; answers are in the body format of
the `codec` the body names (default msgpack; `png-base64` answers JSON, handy with curl):
  GET  /health                                  -> {status, envs, workers, decoders, codecs,
                                                    pool_cache}
  POST /v1/envs  {codec?, envs: [{env_id, env?, group?, config?}]} -> system prompts
  POST /v1/reset {codec?, envs: [{env_id, seed}]}                  -> observations
  POST /v1/step  {codec?, envs: [{env_id, action, step}]}          -> step results
  POST /v1/close {codec?, envs: [{env_id}]}                        -> whether each was open
Answers: {codec, results: [{env_id, ok: true, ...} | {env_id, ok: false, error, field,
status}]}. A request that is wrong as a whole gets a 4xx JSON `{error, field}` and runs
nothing."""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from vagen.config import add_flags, flag_values
from vagen.env.groups import load_env_groups
from vagen.server.launch import LISTENING
from vagen.server.service import EnvService, EnvSpec, RequestError, Slot
from vagen.server.wire import (
    DEFAULT_CODEC,
    Codec,
    WireError,
    encode_observation,
    encode_step_result,
    get_codec,
    list_codecs,
)
from vagen.video.pool import pool_cache_stats

log = logging.getLogger(__name__)
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
TOKEN_ENV_VAR = "VAGEN_SERVER_TOKEN"
# Deepest nesting a request body may have (a real one nests 4 levels).
MAX_BODY_DEPTH = 32


@dataclass
class ServerLimits:
    """Bounds on what one request may carry, so a bad client cannot exhaust the server."""

    max_body_bytes: int = field(default=64 << 20, metadata={"help": "largest request body"})
    max_batch: int = field(default=4096, metadata={"help": "most envs in one request"})
    max_action_chars: int = field(default=1 << 16, metadata={"help": "longest action text"})
    max_id_chars: int = field(default=256, metadata={"help": "longest env id"})


def create_app(service: EnvService, token: str | None = None,
               limits: ServerLimits | None = None) -> Flask:
    """The Flask app over `service`. With `token`, every request needs
    `Authorization: Bearer <token>`."""
    limits = limits or ServerLimits()
    app = Flask("vagen.server")
    app.config["MAX_CONTENT_LENGTH"] = limits.max_body_bytes
    parse = _Parser(limits)

    @app.before_request
    def check_token() -> Response | None:
        sent = request.headers.get("Authorization", "")
        if token and not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            return _error("missing or wrong bearer token", "Authorization", 401)
        return None

    @app.errorhandler(RequestError)
    def request_error(err: RequestError) -> Response:
        return _error(service.redact(str(err)), err.field, err.status)

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException) -> Response:
        return _error(f"{err.name}: {err.description}", None, err.code or 500)

    @app.errorhandler(Exception)
    def internal_error(err: Exception) -> Response:
        log.exception("unhandled error on %s", request.path)
        return _error(service.redact(f"internal error: {type(err).__name__}: {err}"), None, 500)

    @app.get("/health")
    def health() -> Response:
        return _json({"status": "ok", "envs": len(service), "workers": service.workers,
                      "decoders": service.decoders,
                      "codecs": list_codecs(), "groups": sorted(service.groups),
                      "pool_cache": pool_cache_stats()})

    @app.post("/v1/envs")
    def create() -> Response:
        body = _body()
        specs = [(parse.env_id(item, i), parse.spec(item, i))
                 for i, item in enumerate(parse.items(body))]
        return _answer(service.create(specs), parse.codec(body),
                       lambda value, _: {"system_prompt": value})

    @app.post("/v1/reset")
    def reset() -> Response:
        body = _body()
        seeds = [(parse.env_id(item, i), parse.integer(item, "seed", i))
                 for i, item in enumerate(parse.items(body))]
        return _answer(service.reset(seeds), parse.codec(body),
                       lambda value, codec: {"obs": encode_observation(value[0], codec),
                                             "system_prompt": value[1]})

    @app.post("/v1/step")
    def step() -> Response:
        body = _body()
        actions = [(parse.env_id(item, i), parse.action(item, i),
                    parse.integer(item, "step", i, minimum=0))
                   for i, item in enumerate(parse.items(body))]
        return _answer(service.step(actions), parse.codec(body),
                       lambda value, codec: {"result": encode_step_result(value, codec)})

    @app.post("/v1/close")
    def close() -> Response:
        body = _body()
        env_ids = [parse.env_id(item, i) for i, item in enumerate(parse.items(body))]
        return _answer(service.close(env_ids), parse.codec(body),
                       lambda value, _: {"closed": value})

    return app


class _Parser:
    """Checks request fields; each failure is a `RequestError` naming the field path."""

    def __init__(self, limits: ServerLimits):
        self.limits = limits

    def items(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        items = body.get("envs")
        if not isinstance(items, list) or not items:
            raise RequestError("'envs' must be a non-empty list of objects", "envs")
        if len(items) > self.limits.max_batch:
            raise RequestError(f"'envs' has {len(items)} items; at most "
                               f"{self.limits.max_batch} per request", "envs", 413)
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise RequestError(f"envs[{i}] must be an object", f"envs[{i}]")
        return items

    def env_id(self, item: dict[str, Any], i: int) -> str:
        return self.string(item, "env_id", i, self.limits.max_id_chars, required=True)

    def action(self, item: dict[str, Any], i: int) -> str:
        return self.string(item, "action", i, self.limits.max_action_chars, required=True,
                           allow_empty=True)

    def spec(self, item: dict[str, Any], i: int) -> EnvSpec:
        config = item.get("config", {})
        if not isinstance(config, dict):
            raise RequestError(f"envs[{i}].config must be an object", f"envs[{i}].config")
        try:
            return EnvSpec(env=self.string(item, "env", i, self.limits.max_id_chars),
                           group=self.string(item, "group", i, self.limits.max_id_chars),
                           config=config)
        except ValueError as err:
            raise RequestError(str(err), f"envs[{i}].env") from err

    def string(self, item: dict[str, Any], key: str, i: int, max_chars: int,
               required: bool = False, allow_empty: bool = False) -> str:
        where = f"envs[{i}].{key}"
        value = item.get(key, None if required else "")
        if not isinstance(value, str) or (required and not value and not allow_empty):
            raise RequestError(f"{where} must be a {'non-empty ' * (not allow_empty)}string, "
                               f"got {_kind(value)}", where)
        if len(value) > max_chars:
            raise RequestError(f"{where} has {len(value)} characters; at most {max_chars}",
                               where, 413)
        return value

    def integer(self, item: dict[str, Any], key: str, i: int, minimum: int = -(2**63)) -> int:
        where = f"envs[{i}].{key}"
        value = item.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not (
                minimum <= value < 2**63):
            raise RequestError(f"{where} must be an integer in [{minimum}, 2**63), got "
                               f"{_kind(value)}", where)
        return value

    def codec(self, body: dict[str, Any]) -> Codec:
        name = body.get("codec", DEFAULT_CODEC)
        if not isinstance(name, str):
            raise RequestError(f"'codec' must be a string, one of {', '.join(list_codecs())}; "
                               f"got {_kind(name)}", "codec")
        try:
            return get_codec(name)
        except KeyError as err:
            raise RequestError(err.args[0], "codec") from err


def _body() -> dict[str, Any]:
    try:
        body = json.loads(request.get_data(cache=False))
    except (ValueError, UnicodeDecodeError) as err:
        raise RequestError(f"body is not valid JSON: {err}", "body") from err
    except RecursionError:
        raise RequestError(f"body nests deeper than {MAX_BODY_DEPTH} levels", "body") from None
    if not isinstance(body, dict):
        raise RequestError(f"body must be a JSON object, got {_kind(body)}", "body")
    _check_text(body)
    return body


def _check_text(body: Any) -> None:
    """Before anything is applied: every string is valid UTF-8 text (JSON's \\u escapes
    can spell lone surrogates, which no reply could echo) and nothing nests deeper than
    MAX_BODY_DEPTH. Walks without recursion."""
    stack: list[tuple[Any, str, int]] = [(body, "body", 0)]
    while stack:
        value, where, depth = stack.pop()
        if depth > MAX_BODY_DEPTH:
            raise RequestError(f"{where}: nests deeper than {MAX_BODY_DEPTH} levels", where)
        if isinstance(value, str):
            if not _is_text(value):
                raise RequestError(f"{where}: not valid text (a lone surrogate)", where)
        elif isinstance(value, dict):
            for key, item in value.items():
                stack.append((key, where, depth + 1))
                named = _is_text(key) and len(key) <= 64  # a key fit to name in the path
                stack.append((item, f"{where}.{key}" if named else where, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value))


def _is_text(value: str) -> bool:
    """Whether `value` encodes as UTF-8 (no lone surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _answer(slots: list[Slot], codec: Codec,
            encode: Callable[[Any, Codec], dict[str, Any]]) -> Response:
    """`{codec, results}` sent as one piece per env (a batch of frames is never joined
    into one buffer); a slot whose answer cannot be encoded gets that error instead."""
    results = []
    for slot in slots:
        if slot.ok:
            try:
                results.append({"env_id": slot.env_id, "ok": True, "replayed": slot.replayed,
                                **encode(slot.value, codec)})
                continue
            except WireError as err:
                slot = Slot(slot.env_id, error=f"cannot encode the answer: {err}", status=500)
        results.append({"env_id": slot.env_id, "ok": False, "error": slot.error,
                        "field": slot.field, "status": slot.status})
    parts = codec.dump_parts({"codec": codec.name}, "results", results)
    response = Response(parts, mimetype=codec.content_type)
    response.content_length = sum(len(part) for part in parts)
    return response


def _json(payload: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, mimetype="application/json")


def _error(message: str, field_name: str | None, status: int) -> Response:
    return _json({"error": message, "field": field_name}, status)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def start_server(app: Flask, host: str = "127.0.0.1", port: int = 0, threads: int = 8,
                 max_body_bytes: int = ServerLimits.max_body_bytes, poll_s: int = 1):
    """A waitress server bound to host:port (0 = a free port, see `.effective_port`);
    `.run()` serves. `poll_s` is how often its loop wakes up to notice a stop: whole seconds,
    since waitress truncates it to an int and 0 makes the loop spin (holding the GIL)."""
    if poll_s < 1:
        raise ValueError(f"poll_s must be a whole number of seconds >= 1, got {poll_s}")
    from waitress import create_server

    # Answers go out in pieces (one per env); an output buffer above waitress' 16 MB high
    # watermark keeps them in memory instead of spilling to temporary files.
    return create_server(app, host=host, port=port, threads=threads,
                         max_request_body_size=max_body_bytes, asyncore_loop_timeout=poll_s,
                         outbuf_overflow=64 << 20, ident="vagen")


class BackgroundServer:
    """`service` served by waitress on a daemon thread, in this process (trainer, eval,
    tests): `.url`, `.service`, `.stop()`, which also closes the service's envs."""

    def __init__(self, service: EnvService, token: str | None = None,
                 limits: ServerLimits | None = None, host: str = "127.0.0.1", port: int = 0,
                 threads: int = 8):
        import threading

        self.service = service
        app = create_app(service, token, limits)
        # stop() wakes the loop through its trigger, so a 1 s poll keeps stopping prompt.
        self._server = start_server(app, host, port, threads)
        self.url = f"http://{host}:{self._server.effective_port}"
        self._thread = threading.Thread(target=self._server.run, name="vagen-server",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting and drop open connections, as a killed server would; then close
        the service's envs and worker threads."""
        try:
            self._stop_serving()
        finally:
            self.service.shutdown()

    def _stop_serving(self) -> None:
        from waitress import wasyncore

        server = self._server
        trigger = server.trigger

        def close_sockets() -> None:
            # Runs inside the server's loop (closing sockets from this thread while the loop
            # waits on them fails its select()). The wake-up pipe stays open until the loop
            # and the request threads are gone, since they may still pull it; so the
            # listening socket is closed without `server.close()`, which closes the pipe.
            channels = {k: v for k, v in server._map.items() if v not in (server, trigger)}
            wasyncore.close_all(channels)
            wasyncore.dispatcher.close(server)
            trigger.del_channel()

        trigger.pull_trigger(close_sockets)
        self._thread.join(timeout=10)
        server.task_dispatcher.shutdown()
        trigger.close()


@dataclass
class ServeConfig:
    """`vagen server`'s settings; each field is a flag (`vagen.config.add_flags`)."""

    config: str | None = field(default=None, metadata={
        "help": "env_config.yaml whose env groups clients may create"})
    host: str = field(default="127.0.0.1", metadata={
        "help": "address to bind; anything but loopback requires --token"})
    port: int = field(default=5000, metadata={"help": "port (0 picks a free one)"})
    workers: int = field(default=4, metadata={"help": "threads stepping envs"})
    decoders: int | None = field(default=None, metadata={
        "help": "processes decoding cold videos (default: --workers when above 1; 0: the "
                "worker threads decode, which holds the GIL)"})
    threads: int | None = field(default=None, metadata={
        "help": "HTTP threads (default: workers + 4)"})
    token: str | None = field(default=None, metadata={
        "help": f"bearer token every request must carry (default: ${TOKEN_ENV_VAR})"})
    data_root: list[str] = field(default_factory=list, metadata={
        "help": "folders whose samples files clients may name in the configs they send "
                "(repeatable); the env groups' folders always are, nothing else is",
        "metavar": "DIR"})
    debug: bool = field(default=False, metadata={
        "help": "Flask's debug server instead (loopback only, without --token: its debugger "
                "runs code for anyone who reaches it)"})


def main(argv: list[str] | None = None) -> int:
    """`vagen server`: serve the envs of an env config until interrupted."""
    parser = argparse.ArgumentParser(prog="vagen server", description=__doc__.split("\n")[0])
    add_flags(parser, ServeConfig)
    args = ServeConfig(**flag_values(parser.parse_args(argv), ServeConfig))
    args.token = args.token or os.environ.get(TOKEN_ENV_VAR)
    if args.host not in LOCAL_HOSTS and not args.token:
        parser.error(f"--host {args.host} exposes the server beyond this machine; "
                     f"give --token (or set ${TOKEN_ENV_VAR}) so that requests must carry it")
    if args.debug and (args.host not in LOCAL_HOSTS or args.token):
        parser.error("--debug serves Flask's debugger, which runs code and ignores --token: "
                     "use it on a loopback --host without --token only")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    if args.decoders is not None and args.decoders < 0:
        parser.error(f"--decoders must be >= 0, got {args.decoders}")
    decoders = args.decoders if args.decoders is not None else (
        args.workers if args.workers > 1 else 0)
    service = EnvService(load_env_groups(args.config) if args.config else None, args.workers,
                         data_roots=args.data_root, decoders=decoders)
    app = create_app(service, args.token)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        if args.debug:
            app.run(args.host, args.port, debug=True, threaded=True, use_reloader=False)
            return 0
        server = start_server(app, args.host, args.port, args.threads or args.workers + 4)
        print(f"{LISTENING}http://{args.host}:{server.effective_port} "
              f"({args.workers} workers, groups: {', '.join(sorted(service.groups)) or '-'})",
              flush=True)
        try:
            server.run()
        finally:
            server.close()
    except KeyboardInterrupt:
        pass
    finally:
        service.shutdown()
    return 0


def _exit_on_signal(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    sys.exit(main())
