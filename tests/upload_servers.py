"""Loopback servers that receive uploads, for the diagnostics and log upload tests: an HTTP
server taking multipart POSTs and PUTs (:class:`HttpUploadServer`) and a real FTP server
(pyftpdlib, :class:`FtpUploadServer`). Each runs on its own thread and keeps what it got."""

from __future__ import annotations

import email.parser
import email.policy
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import ThreadedFTPServer


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    file_name: str | None = None  # multipart: the file part's filename
    file: bytes | None = None  # multipart: the file part's bytes (PUT: the body)


@dataclass
class HttpUploadServer:
    """Answers each request with the next of ``statuses`` (200 once they run out)."""

    statuses: dict[str, list[int]] = field(default_factory=dict)  # by method
    received: list[Received] = field(default_factory=list)

    def __enter__(self) -> HttpUploadServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                got = Received(self.command, self.path, dict(self.headers.items()), body)
                if self.command == "PUT":
                    got.file = body
                elif self.headers.get_content_type() == "multipart/form-data":
                    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                        b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n"
                        + body)
                    for part in message.iter_parts():
                        if part.get_param("name", header="content-disposition") == "file":
                            got.file_name = part.get_filename()
                            got.file = part.get_payload(decode=True)
                server.received.append(got)
                queue = server.statuses.get(self.command, [])
                status = queue.pop(0) if queue else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_PUT = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class FtpUploadServer:
    """A pyftpdlib server on 127.0.0.1 with one user who may write to ``root``."""

    def __init__(self, root: Path, user: str = "diag", password: str = "ftppass") -> None:
        self.root = root
        self.user = user
        self.password = password

    def __enter__(self) -> FtpUploadServer:
        self.root.mkdir(parents=True, exist_ok=True)
        authorizer = DummyAuthorizer()
        authorizer.add_user(self.user, self.password, str(self.root), perm="elradfmw")
        handler = type("Handler", (FTPHandler,), {"authorizer": authorizer,
                                                  "banner": "chargerfw test ftp"})
        self._server = ThreadedFTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"timeout": 0.1}, daemon=True)
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        return int(self._server.address[1])

    def url(self, directory: str = "", password: str | None = None) -> str:
        secret = self.password if password is None else password
        return f"ftp://{self.user}:{secret}@127.0.0.1:{self.port}/{directory}"

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.close_all()
        self._thread.join(5)
