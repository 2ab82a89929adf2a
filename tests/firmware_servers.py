"""Loopback file servers for firmware downloads: an HTTP server with Range support that can
cut a response short, and a real FTP server (pyftpdlib) over a folder."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class HttpFiles:
    """What the HTTP server serves and saw. ``cut_after``: the next response for a path ends
    (connection closed) after that many body bytes, once."""

    files: dict[str, bytes]
    cut_after: dict[str, int] = field(default_factory=dict)
    # Seconds to pause after each 16 KiB sent: a download slow enough to cut in the middle.
    pause_s: float = 0.0
    ranges: list[str | None] = field(default_factory=list)  # each GET's Range header
    url: str = ""


def _handler(state: HttpFiles) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            state.ranges.append(self.headers.get("Range"))
            body = state.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            start = 0
            wanted = self.headers.get("Range")
            if wanted:
                start = int(wanted.removeprefix("bytes=").split("-")[0])
                if start >= len(body):
                    self.send_error(416)
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            cut = state.cut_after.pop(self.path, None)
            data = body[start:] if cut is None else body[start:start + cut]
            for offset in range(0, len(data), 16384):
                self.wfile.write(data[offset:offset + 16384])
                if state.pause_s:
                    self.wfile.flush()
                    time.sleep(state.pause_s)
            if cut is not None:
                self.wfile.flush()
                self.close_connection = True

    return Handler


@contextlib.contextmanager
def http_server(files: dict[str, bytes]) -> Iterator[HttpFiles]:
    state = HttpFiles(dict(files))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def ftp_server(root: Path, user: str = "fw", password: str = "secret") -> Iterator[str]:
    """A pyftpdlib server on 127.0.0.1 over ``root``; its base URL with the credentials."""
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import ThreadedFTPServer

    authorizer = DummyAuthorizer()
    authorizer.add_user(user, password, str(root), perm="elr")
    handler = type("Handler", (FTPHandler,), {"authorizer": authorizer,
                                              "passive_ports": None})
    server = ThreadedFTPServer(("127.0.0.1", 0), handler)
    port = server.socket.getsockname()[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"handle_exit": False},
                              daemon=True)
    thread.start()
    try:
        yield f"ftp://{user}:{password}@127.0.0.1:{port}"
    finally:
        server.close_all()
        thread.join(5)
