"""What the light commands load, a cheap guard for their start-up time (bench/startup.py prints
the figures): `chargerfw --help`, `chargerfw status` (through the service, and directly with
it stopped) and the start of `chargerfw run` run in a fresh interpreter that reports the modules
it imported. And every command of the lazy group loads, with the help line `chargerfw --help`
shows for it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from diag_support import FakeService, status_result, write_station

from chargerfw.cli import COMMANDS, main
from chargerfw.control.api import Method

pytestmark = pytest.mark.timeout(60)

# Runs what the console script runs and writes every module it imported, one a line, to the
# file named by $MODULES_OUT (after the command, which ends with SystemExit).
DRIVER = """\
import os, sys
from chargerfw.cli import console
try:
    console(sys.argv[1:])
finally:
    with open(os.environ["MODULES_OUT"], "w") as out:
        out.write("\\n".join(sorted(sys.modules)))
"""

# Never needed by a technician's light command: the backend and its pydantic models, the OCPP
# library and its schema validator, the Modbus library, the station runtime and simulators, the
# dev-only renderer.
NEVER_LIGHT = ("fastapi", "sqlalchemy", "alembic", "uvicorn", "pydantic", "pymodbus", "ocpp",
               "jsonschema", "websockets", "rich", "aiohttp", "chargerfw.csms",
               "chargerfw.runtime", "chargerfw.sim", "chargerfw.drivers.meter",
               "chargerfw.drivers.readers")


def imported(modules: set[str], package: str) -> bool:
    return package in modules or any(name.startswith(package + ".") for name in modules)


def run_cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, set[str]]:
    """Exit status of ``chargerfw ARGS`` in a fresh interpreter, and the modules it imported."""
    out = tmp_path / "modules.txt"
    done = subprocess.run([sys.executable, "-c", DRIVER, *args], capture_output=True,
                          env={**os.environ, **(env or {}), "MODULES_OUT": str(out)}, timeout=30)
    assert out.exists(), done.stderr.decode()
    return done.returncode, set(out.read_text().split())


def test_help_imports_no_command_module(tmp_path):
    code, modules = run_cli(tmp_path, "--help")
    assert code == 0
    loaded = [name for name in (*NEVER_LIGHT, "asyncio",
                                "chargerfw.control", "chargerfw.store", "chargerfw.config.station")
              if imported(modules, name)]
    assert loaded == []
    # The click group, and the check for the service's own command line; no command module.
    assert sorted(name for name in modules if name.startswith("chargerfw.cli.")) == [
        "chargerfw.cli.group", "chargerfw.cli.service"]


def test_status_through_the_service_imports_neither_backend_nor_drivers(tmp_path, station,
                                                                        runtime_dir):
    with FakeService(runtime_dir / "control.sock", {Method.STATUS: lambda _: status_result()}):
        code, modules = run_cli(tmp_path, "status", "-c", station)
    assert code == 0
    loaded = [name for name in (*NEVER_LIGHT, "asyncio", "chargerfw.store",
                                "chargerfw.config.station", "chargerfw.drivers.board")
              if imported(modules, name)]
    assert loaded == []
    assert imported(modules, "chargerfw.control.api")  # the typed reply it shows


def test_status_with_the_service_stopped_reads_config_and_store_only(tmp_path, station):
    code, modules = run_cli(tmp_path, "status", "-c", station)
    assert code == 3  # the service is not running
    loaded = [name for name in (*NEVER_LIGHT, "asyncio", "chargerfw.drivers.board")
              if imported(modules, name)]
    assert loaded == []
    assert imported(modules, "chargerfw.config.station")


def test_the_service_starts_without_click(tmp_path):
    config = write_station(tmp_path, edit=lambda document: document.remove("ocpp"))
    code, modules = run_cli(tmp_path, "--log-level", "INFO", "run", "--config", str(config))
    assert code == 2  # no [ocpp] section: it cannot run, once the config is read
    assert imported(modules, "chargerfw.config.station")
    assert not imported(modules, "click")


def test_every_listed_command_loads_with_its_help_line():
    ctx = click.Context(main)
    assert main.list_commands(ctx) == sorted(COMMANDS)
    for name, (_, listed) in COMMANDS.items():
        command = main.get_command(ctx, name)
        assert command is not None and command.name == name
        assert command.get_short_help_str(limit=1000) == listed, name
