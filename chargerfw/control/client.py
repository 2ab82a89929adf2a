"""The client side of the control socket: where the socket is, one raw request (:func:`call`),
and :class:`ControlClient`, which sends typed requests and returns typed replies."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from chargerfw.control.api import (
    INTERNAL_ERROR,
    ControlError,
    ReplyT,
    Request,
    decode_reply,
    request_params,
)
from chargerfw.hwlock import runtime_dir

SOCKET_NAME = "control.sock"
SOCKET_ENV = "CHARGERFW_CONTROL_SOCKET"  # as `chargerfw run --control-socket` reads it


def default_socket_path() -> Path:
    """``$CHARGERFW_RUNTIME_DIR/control.sock`` (the runtime directory defaults to
    /run/chargerfw)."""
    return runtime_dir() / SOCKET_NAME


def control_socket_path() -> Path:
    """``$CHARGERFW_CONTROL_SOCKET``, else :func:`default_socket_path`."""
    explicit = os.environ.get(SOCKET_ENV)
    return Path(explicit) if explicit else default_socket_path()


class ControlUnavailable(ConnectionError):
    """Nothing answers on the control socket (the service is not running, no access, no
    reply in time, or no readable reply)."""


def _connect(socket_path: Path | str, timeout_s: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout_s)
    try:
        sock.connect(str(socket_path))
    except (FileNotFoundError, ConnectionRefusedError, PermissionError) as exc:
        sock.close()
        raise ControlUnavailable(
            f"no station answers on {socket_path}: {exc.strerror or exc}") from None
    except BaseException:
        sock.close()
        raise
    return sock


def call(socket_path: Path | str, method: str, *, timeout_s: float = 10.0,
         **params: Any) -> Any:
    """Send one request to a running station and return its ``result`` as JSON values.

    Raises :class:`ControlUnavailable` if nothing listens, :class:`ControlError` for an error
    reply (``.code``, ``.message``), ``TimeoutError`` if no reply comes within ``timeout_s``."""
    request = json.dumps({"id": 1, "method": method, "params": params}).encode() + b"\n"
    with _connect(socket_path, timeout_s) as sock:
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


class ControlClient:
    """Typed requests to the service on ``path``."""

    def __init__(self, path: Path | str, timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self.timeout_s = timeout_s

    def check(self) -> None:
        """Connect and hang up: :class:`ControlUnavailable` if nothing listens."""
        _connect(self.path, min(self.timeout_s, 2.0)).close()

    def request(self, request: Request[ReplyT], *, timeout_s: float | None = None) -> ReplyT:
        """The service's typed reply. Raises :class:`ControlUnavailable` (nobody answers in
        time, or not with JSON), :class:`ControlError` (an error reply, or
        :class:`~chargerfw.control.api.BadReply` for a result that is not the method's
        reply)."""
        timeout = self.timeout_s if timeout_s is None else timeout_s
        try:
            result = call(self.path, request.method.value, timeout_s=timeout,
                          **request_params(request))
        except TimeoutError:
            raise ControlUnavailable(f"no answer on {self.path} within {timeout:g} s") from None
        except (OSError, ValueError) as exc:  # reset mid-reply, garbage instead of JSON
            if isinstance(exc, ControlUnavailable):
                raise
            raise ControlUnavailable(f"{self.path}: {exc}") from None
        return decode_reply(type(request), result)
