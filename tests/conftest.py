"""Fixtures shared across test modules: the databases the CSMS and whole-chain tests run on, a
real pcscd with the vpcd reader, and short directories for Unix sockets.

The helpers are imported inside the fixtures so test modules that need no database do not
load the backend's libraries at collection.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ocpi_conformance import OcpiTraffic
    from pg import PostgresServer
    from reader_pcscd import VpcdStack


@pytest.fixture(autouse=True)
def _station_logging_restored() -> Iterator[None]:
    """Each test starts with the log output a fresh process has: a CLI invoked in-process
    (``main`` sets the level, WARNING by default, and its own stream) must not silence or
    redirect the lines of the tests after it on the same worker."""
    import logging

    from chargerfw import logs

    root = logging.getLogger()
    level, stream = logs._output.level, logs._output.stream
    root_level, root_handlers = root.level, list(root.handlers)
    yield
    with logs._output.lock:
        logs._output.level, logs._output.stream = level, stream
    root.setLevel(root_level)
    root.handlers[:] = root_handlers


# Modules whose tests run for tens of seconds (measured with --durations). They are collected
# ahead of the rest, so that xdist (--dist loadfile: one module at a time, in collection order)
# starts them first and the short ones fill the workers up around them, instead of one being
# handed out last and running alone at the end. Those installing with pip (slow on a loaded
# machine) alternate with the others, so the first four modules started do not all run pip.
LONG_RUNNING_FIRST = (
    "tests/release/test_release_install.py",
    "tests/chain/test_chain_chaos.py",
    "tests/test_install.py",
    "tests/safety/test_safety_processes.py",
    "tests/release/test_release_powercut.py",
    "tests/csms/ocpi/test_ocpi_openapi_fuzz.py",
    "tests/test_packaging.py",
    "tests/csms/test_csms_fleet_ca.py",
    "tests/release/test_release_update_from_backend.py",
    "tests/csms/test_csms_admin_api_fuzz.py",
    "tests/release/test_release_update.py",
    "tests/sim/fleet/test_fleet_run.py",
    "tests/release/test_release_signed_update_from_backend.py",
    "tests/csms/ocpi/test_ocpi_party_scope.py",
    "tests/csms/test_csms_cp_commands.py",
    "tests/chain/test_chain_security_migration.py",
    "tests/csms/test_csms_hostile_frames.py",
    "tests/ocpp/test_ocpp_hostile_memory.py",
    "tests/csms/test_csms_load_management.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The modules in LONG_RUNNING_FIRST move ahead, in that order; each module's tests stay
    together and in their order, the rest keep theirs."""
    rank = {module: n for n, module in enumerate(LONG_RUNNING_FIRST)}

    def module_rank(item: pytest.Item) -> int:
        return rank.get(item.nodeid.split("::", 1)[0], len(rank))  # nodeids are root-relative

    items.sort(key=module_rank)  # stable: the order within a rank is kept


@pytest.fixture(scope="module")
def pg(request: pytest.FixtureRequest) -> PostgresServer:
    """The session's PostgreSQL server (started on first use, stopped when the session ends)."""
    from pg import session_postgres

    return session_postgres(request)


@pytest.fixture(scope="session")
def csms_template_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where this session (this worker) keeps its migrated SQLite template."""
    return tmp_path_factory.mktemp("csms-templates")


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path, pg: PostgresServer,
       csms_template_dir: Path) -> str:
    """A fresh database URL at the newest schema: each test runs once on a SQLite file and once
    on PostgreSQL. Each is a copy of a template migrated once per session (the migrations
    themselves are tested from empty through ``empty_db``)."""
    from csms_doubles import migrated_db_url_for

    return migrated_db_url_for(request.param, tmp_path, pg, csms_template_dir)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path, pg: PostgresServer) -> str:
    """A fresh, empty database URL (no migration applied), on SQLite and on PostgreSQL: for the
    tests of the migrations themselves."""
    from csms_doubles import db_url_for

    return db_url_for(request.param, tmp_path, pg)


@pytest.fixture(scope="module")
def vpcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VpcdStack]:
    """A real pcscd with the vpcd virtual reader, for one module's PC/SC tests."""
    from reader_pcscd import pcscd_with_vpcd

    with pcscd_with_vpcd(tmp_path_factory.mktemp("pcscd")) as stack:
        yield stack


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path: Unix socket paths are limited to ~107 bytes, so control
    sockets and locks stay out of pytest's long tmp paths."""
    path = Path(tempfile.mkdtemp(prefix="cfw-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def runtime_dir(short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$CHARGERFW_RUNTIME_DIR (control socket, hardware lock) in a short directory."""
    monkeypatch.setenv("CHARGERFW_RUNTIME_DIR", str(short_dir))
    monkeypatch.delenv("CHARGERFW_CONTROL_SOCKET", raising=False)
    return short_dir


# --- OCPI 2.2.1 conformance of every exchange -------------------------------------------------

OCPI_TRAFFIC = pytest.StashKey["OcpiTraffic"]()


@pytest.fixture(autouse=True)
def ocpi_traffic(request: pytest.FixtureRequest) -> Iterator[OcpiTraffic | None]:
    """In a test that loaded the backend: every answer of the OCPI API a client receives and
    every body the backend sends to a partner is checked against the OCPI 2.2.1 model in
    tests/ocpi_spec (tests/ocpi_conformance.py); a violation fails the test."""
    if "chargerfw.csms.urlpolicy" not in sys.modules:
        yield None
        return
    from ocpi_conformance import OcpiTraffic

    with OcpiTraffic().installed() as traffic:
        request.node.stash[OCPI_TRAFFIC] = traffic
        yield traffic
    if traffic.found:  # found while fixtures were torn down
        pytest.fail("\n".join(traffic.found), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    traffic = item.stash.get(OCPI_TRAFFIC, None)
    try:
        result = yield
    finally:
        found: list[str] = []
        if traffic is not None:
            found, traffic.found = traffic.found, []
    if found:
        pytest.fail("Not OCPI 2.2.1:\n" + "\n".join(found), pytrace=False)
    return result
