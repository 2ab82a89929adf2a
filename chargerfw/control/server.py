"""The control socket as the running service serves it: a Unix socket (mode 0660, so only the
service's user and group reach it; no TCP port) that decodes each request line into the
method's request type (:mod:`chargerfw.control.api`), calls the handler the service gave for
that method, and encodes its reply.

The socket belongs to one station for the station's whole life: :class:`ControlSocketLock` is
taken before the station touches its store, so two stations never share a socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from chargerfw.control.api import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    ControlError,
    Method,
    decode_request,
    encode_reply,
)
from chargerfw.hwlock import LockHolder, OwnerLock
from chargerfw.logs import get_logger

log = get_logger(__name__)

MAX_REQUEST_BYTES = 64 * 1024

# A handler takes its method's request and returns its reply, or an awaitable of it.
Handler = Callable[[Any], object]
Handlers = Mapping[Method, Handler]


class ControlSocketInUse(RuntimeError):
    """Another running station serves (or is starting on) this control socket path."""

    def __init__(self, path: Path, holder: LockHolder | None) -> None:
        self.path = path
        self.holder = holder
        who = holder.describe() if holder else "another process"
        super().__init__(f"the control socket {path} belongs to {who}: stop that station or "
                         "give this one another --control-socket")


class ControlSocketLock(OwnerLock):
    """A flock on ``<socket>.lock`` held for a station's whole life, taken before the station
    touches its store, so that two stations never share one control socket (asyncio would
    silently replace a live socket file when binding)."""

    def __init__(self, socket_path: Path | str, owner: str) -> None:
        socket_path = Path(socket_path)
        super().__init__(owner, socket_path.with_name(socket_path.name + ".lock"))
        self.socket_path = socket_path

    def busy_error(self, holder: LockHolder | None) -> Exception:
        return ControlSocketInUse(self.socket_path, holder)


class ControlServer:
    """Serves ``handlers``: one per method the service offers (a station on real hardware
    offers no ``sim.*`` method)."""

    def __init__(self, path: Path | str, handlers: Handlers) -> None:
        self.path = Path(path)
        self._handlers: dict[str, Handler] = {method.value: h for method, h in handlers.items()}
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_socket():
            # A socket left by a process that died; a live service would still hold it.
            with contextlib.suppress(OSError):
                probe = socket.socket(socket.AF_UNIX)
                probe.settimeout(0.2)
                try:
                    probe.connect(str(self.path))
                except OSError:
                    self.path.unlink()
                else:
                    raise ControlSocketInUse(self.path, None)
                finally:
                    probe.close()
        old_umask = os.umask(0o117)  # never world-accessible, not even for a moment
        try:
            self._server = await asyncio.start_unix_server(
                self._client, path=str(self.path), limit=MAX_REQUEST_BYTES)
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o660)
        log.info("control.listening", path=str(self.path))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    await self._write(writer, _error(
                        None, INVALID_REQUEST, f"request longer than {MAX_REQUEST_BYTES} bytes"))
                    return
                if not line:
                    return
                if not line.strip():
                    continue
                await self._write(writer, await self.dispatch(line))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, reply: dict[str, Any]) -> None:
        writer.write(json.dumps(reply, default=str).encode() + b"\n")
        await writer.drain()

    async def dispatch(self, line: bytes | str) -> dict[str, Any]:
        """One request line -> one reply object."""
        try:
            request = json.loads(line)
        except (ValueError, UnicodeDecodeError) as exc:
            return _error(None, PARSE_ERROR, f"not JSON: {exc}")
        if not isinstance(request, dict):
            return _error(None, INVALID_REQUEST, "a request must be a JSON object")
        request_id = request.get("id")
        method = request.get("method")
        params = request.get("params", {})
        if not isinstance(method, str) or not method:
            return _error(request_id, INVALID_REQUEST, "'method' must be a non-empty string")
        if params is None:
            params = {}
        if not isinstance(params, dict):
            return _error(request_id, INVALID_REQUEST, "'params' must be a JSON object")
        handler = self._handlers.get(method)
        if handler is None:
            return _error(request_id, METHOD_NOT_FOUND, f"unknown method {method!r}")
        try:
            typed = decode_request(method, params)
            reply = handler(typed)
            if inspect.isawaitable(reply):
                reply = await reply
            result = encode_reply(type(typed), reply)
        except ControlError as exc:
            return _error(request_id, exc.code, exc.message)
        except (ValueError, KeyError, TypeError) as exc:
            return _error(request_id, INVALID_PARAMS, f"{method}: {exc}")
        except Exception as exc:
            log.exception("control.handler_failed", method=method)
            return _error(request_id, INTERNAL_ERROR, f"{method} failed: {type(exc).__name__}")
        return {"id": request_id, "result": result}


def _error(request_id: object, code: int, message: str) -> dict[str, Any]:
    return {"id": request_id, "error": {"code": code, "message": message}}
