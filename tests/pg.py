"""A throwaway PostgreSQL 15 server on loopback for tests, and databases on it (empty, or copies
of a template built once).

``postgres_server()`` runs initdb into a temporary directory, starts the server with pg_ctl on
127.0.0.1 and a free port (its socket directory inside the temp dir), waits until it accepts
connections, and stops exactly that server with pg_ctl on exit. As root, the server runs as
the unprivileged ``postgres`` user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

PG_BIN = Path("/usr/lib/postgresql/15/bin")
RUN_AS = "postgres"


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    data_dir: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def connect(self) -> psycopg.Connection[Any]:
        """An autocommit connection to the maintenance database (CREATE DATABASE and such)."""
        return psycopg.connect(host=self.host, port=self.port, user=self.user,
                               dbname="postgres", autocommit=True)

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create a database (empty, or a copy of ``template``) and return its URL."""
        copy_of = f' TEMPLATE "{template}"' if template is not None else ""
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"{copy_of}')
        return self.url(name)


_db_names = itertools.count(1)


def fresh_database(server: PostgresServer, prefix: str = "csms", template: str | None = None
                   ) -> str:
    """A new database on ``server``, empty or a copy of ``template`` (one per test keeps tests
    independent)."""
    return server.create_database(f"{prefix}_{os.getpid()}_{next(_db_names)}", template)


def template_database(server: PostgresServer, name: str, build: Callable[[str], None]) -> str:
    """The database ``name`` on ``server``, built by ``build(url)`` the first time any process
    asks for it; returns ``name`` for ``fresh_database(..., template=name)``.

    An advisory lock serialises the processes sharing a server, and the database is built under
    another name and renamed only when complete, so a build that dies midway is never copied.
    It is closed to connections afterwards: PostgreSQL copies a template only while nobody is
    connected to it.
    """
    with server.connect() as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (name,))
        try:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                  (name,)).fetchone()
            if exists is None:
                building = f"{name}_building_{os.getpid()}"
                assert len(building.encode()) <= 63, f"{building!r}: PostgreSQL would cut it"
                conn.execute(f'DROP DATABASE IF EXISTS "{building}"')
                conn.execute(f'CREATE DATABASE "{building}"')
                build(server.url(building))
                conn.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
                conn.execute(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE true '
                             "ALLOW_CONNECTIONS false")
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (name,))
    return name


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", RUN_AS, "--", *argv]


def _run(argv: list[str], log: Path) -> None:
    with log.open("ab") as out:
        result = subprocess.run(_as_server_user(argv), stdout=out, stderr=subprocess.STDOUT,
                                timeout=60, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({result.returncode}):\n{log.read_text()}")


@contextlib.contextmanager
def postgres_server(ready_timeout_s: float = 20.0) -> Iterator[PostgresServer]:
    """Start a private PostgreSQL server; stop it (only it) on exit."""
    if not (PG_BIN / "initdb").exists():
        raise RuntimeError(f"PostgreSQL 15 is not installed ({PG_BIN}/initdb missing); "
                           "run scripts/sysdeps.sh")
    tmp = Path(tempfile.mkdtemp(prefix="csms-pg-"))
    data_dir = tmp / "data"
    log = tmp / "server.log"
    if os.geteuid() == 0:
        try:
            entry = pwd.getpwnam(RUN_AS)
        except KeyError:
            raise RuntimeError(f"running as root needs the unprivileged user {RUN_AS!r} "
                               "(created by the postgresql package)") from None
        os.chown(tmp, entry.pw_uid, entry.pw_gid)
        user = RUN_AS
    else:
        user = pwd.getpwuid(os.geteuid()).pw_name
    log.touch()
    if os.geteuid() == 0:
        os.chown(log, entry.pw_uid, entry.pw_gid)
    port = _free_port()
    started = False
    try:
        _run([str(PG_BIN / "initdb"), "-D", str(data_dir), "-U", user, "--auth=trust",
              "--no-sync", "-E", "UTF8", "--locale=C"], log)
        # fsync off: a test database need not survive a power cut, and it keeps tests fast.
        _run([str(PG_BIN / "pg_ctl"), "-D", str(data_dir), "-l", str(log), "-w", "-t", "30",
              "-o", f"-k {tmp} -p {port} -h 127.0.0.1 -c fsync=off -c full_page_writes=off",
              "start"], log)
        started = True
        deadline = time.monotonic() + ready_timeout_s
        while True:
            try:
                with psycopg.connect(host="127.0.0.1", port=port, user=user, dbname="postgres",
                                     connect_timeout=2):
                    break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL did not accept connections:\n"
                                       f"{log.read_text()}") from None
                time.sleep(0.1)
        yield PostgresServer("127.0.0.1", port, user, data_dir)
    finally:
        if started:
            _run([str(PG_BIN / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "stop"], log)
        shutil.rmtree(tmp, ignore_errors=True)


_shared: dict[str, PostgresServer] = {}


def session_postgres(request: pytest.FixtureRequest) -> PostgresServer:
    """One server for the whole pytest session (each test gets its own database from
    ``fresh_database``); pg_ctl stops it when the session ends."""
    server = _shared.get("server")
    if server is None:
        stack = contextlib.ExitStack()
        server = stack.enter_context(postgres_server())
        _shared["server"] = server

        def stop() -> None:
            _shared.pop("server", None)
            stack.close()

        request.session.addfinalizer(stop)
    return server
