"""The local control channel: a Unix socket the running service serves for the technician's CLI.

Protocol: newline-delimited JSON. A request is ``{"id": any, "method": str, "params": {...}}``
(``params`` optional); each gets one reply line, ``{"id": ..., "result": ...}`` or
``{"id": ..., "error": {"code": int, "message": str}}``. Error codes follow JSON-RPC 2.0:
-32700 not JSON, -32600 not a valid request, -32601 unknown method, -32602 bad params,
-32000 the station refused (for example a fault whose condition is still there), -32603 an
internal error. No TCP port: the socket is mode 0660 so only the service's user and group
reach it.

``call(socket_path, method, **params)`` is the small synchronous client the CLI builds on.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from chargerfw.hwlock import LockHolder, OwnerLock
from chargerfw.logs import get_logger

log = get_logger(__name__)

DEFAULT_RUNTIME_DIR = "/run/chargerfw"
SOCKET_NAME = "control.sock"
MAX_REQUEST_BYTES = 64 * 1024

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
REFUSED = -32000

Handler = Callable[..., Any | Awaitable[Any]]


def default_socket_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$CHARGERFW_RUNTIME_DIR/control.sock`` (default directory /run/chargerfw)."""
    env = os.environ if environ is None else environ
    return Path(env.get("CHARGERFW_RUNTIME_DIR") or DEFAULT_RUNTIME_DIR) / SOCKET_NAME


class ControlError(Exception):
    """An error reply (or one to send): ``code`` as in the module docstring."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class InvalidParams(ControlError):
    def __init__(self, message: str) -> None:
        super().__init__(INVALID_PARAMS, message)


class Refused(ControlError):
    def __init__(self, message: str) -> None:
        super().__init__(REFUSED, message)


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


class ControlUnavailable(ConnectionError):
    """Nothing answers on the control socket (the service is not running, or no access)."""


class ControlServer:
    """Serves ``handlers`` (method name -> callable taking the params as keywords; may be async)."""

    def __init__(self, path: Path | str, handlers: Mapping[str, Handler]) -> None:
        self.path = Path(path)
        self.handlers = dict(handlers)
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
                    await self._write(writer, {"id": None, "error": {
                        "code": INVALID_REQUEST,
                        "message": f"request longer than {MAX_REQUEST_BYTES} bytes"}})
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
        handler = self.handlers.get(method)
        if handler is None:
            return _error(request_id, METHOD_NOT_FOUND, f"unknown method {method!r}")
        try:
            inspect.signature(handler).bind(**params)
        except TypeError as exc:
            return _error(request_id, INVALID_PARAMS, f"{method}: {exc}")
        try:
            result = handler(**params)
            if inspect.isawaitable(result):
                result = await result
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


def call(socket_path: Path | str, method: str, *, timeout_s: float = 10.0,
         **params: Any) -> Any:
    """Send one request to a running station and return its ``result``.

    Raises :class:`ControlUnavailable` if nothing listens, :class:`ControlError` for an error
    reply (``.code``, ``.message``), ``TimeoutError`` if no reply comes within ``timeout_s``."""
    request = json.dumps({"id": 1, "method": method, "params": params}).encode() + b"\n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.connect(str(socket_path))
        except (FileNotFoundError, ConnectionRefusedError, PermissionError) as exc:
            raise ControlUnavailable(
                f"no station answers on {socket_path}: {exc.strerror or exc}") from None
        sock.sendall(request)
        buffer = b""
        while not buffer.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise ControlUnavailable(f"the station closed {socket_path} without a reply")
            buffer += chunk
    reply = json.loads(buffer)
    if "error" in reply:
        error = reply["error"]
        raise ControlError(int(error.get("code", INTERNAL_ERROR)), str(error.get("message")))
    return reply.get("result")
