"""What the technician's commands share: exit codes, the ``--json`` option and output helpers,
the station a command was given (its config and store), and the one place that decides how a
command reaches the station (:func:`station_access`: through the running service, or directly
with the service stopped).

Exit status of every command (documented in docs/technician.md): 0 ok; 1 a check failed or
the command refused; 2 bad options or an invalid config; 3 the service, the store or a device
cannot be reached.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from chargerfw.cli import load_config_or_exit
from chargerfw.control.access import DirectAccess, ServiceAccess, Unreachable, open_existing_store
from chargerfw.control.client import ControlClient, ControlUnavailable, control_socket_path
from chargerfw.control.records import fault_dict, iso, record_dict
from chargerfw.hwlock import HardwareBusy, HardwareLockError
from chargerfw.station.faults import FAULT_SPECS, FaultKind

if TYPE_CHECKING:
    from chargerfw.config import StationConfig
    from chargerfw.drivers.board import Board
    from chargerfw.store import Store

__all__ = ["fault_dict", "iso", "record_dict"]  # shared with the support bundle

EXIT_OK = 0
EXIT_FAILED = 1  # a check failed, or the command refused to act (vehicle connected, no confirmation)
EXIT_USAGE = 2  # bad options, invalid config, nothing configured to test
EXIT_UNREACHABLE = 3  # the service, the store or a device cannot be reached

json_option = click.option("--json", "as_json", is_flag=True, help="print one JSON document")


def open_board(config: StationConfig) -> Board:
    """The board the direct-hardware path builds; a test swaps it to hand in a prepared
    simulation."""
    from chargerfw.drivers.board import build_board

    return build_board(config)


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(code)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def fault_advice_lines(kind: FaultKind, indent: str = "  ") -> list[str]:
    """What a fault means and what to do, for a person reading the human view."""
    spec = FAULT_SPECS[kind]
    return [f"{indent}{kind.value}: {spec.description}", f"{indent}  -> {spec.hint}"]


# -- the station a command was given ----------------------------------------------------------
@dataclass
class Station:
    """The config a command was given, and the store it names."""

    config: StationConfig
    config_path: Path

    @property
    def store_path(self) -> Path:
        return Path(self.config.storage.path)

    def open_store(self) -> Store | None:
        """The store, or None when the file does not exist yet (never creates one)."""
        try:
            return open_existing_store(self.store_path)
        except Unreachable as exc:
            fail(str(exc), EXIT_UNREACHABLE)

    @contextlib.contextmanager
    def store(self) -> Iterator[Store]:
        store = self.open_store()
        if store is None:
            fail(f"no store at {self.store_path} yet (the service has never run with this "
                 "config)", EXIT_UNREACHABLE)
        try:
            yield store
        finally:
            store.close()

    def direct(self, reason: str = "") -> DirectAccess:
        """The station with its service stopped (store, hardware under the hardware lock)."""
        return DirectAccess(self.config, reason=reason, open_board=open_board)


def load_station(config_path: str) -> Station:
    return Station(load_config_or_exit(config_path), Path(config_path))


# -- how a command reaches the station ------------------------------------------------------
def station_access(station: Station | str) -> ServiceAccess | DirectAccess:
    """Through the service when something listens on its control socket, else directly (the
    store, and the hardware under the hardware lock). ``station`` may be a config path: it is
    loaded only for the direct path (the service knows its own config)."""
    client = ControlClient(control_socket_path())
    try:
        client.check()
    except ControlUnavailable as exc:
        if isinstance(station, str):
            station = load_station(station)
        return station.direct(str(exc))
    return ServiceAccess(client)


@contextlib.contextmanager
def reaching_the_hardware() -> Iterator[None]:
    """Exit with the reason when the direct path cannot take the hardware or the store: who
    holds the hardware lock (exit 1), or what cannot be opened (exit 3)."""
    try:
        yield
    except HardwareBusy as exc:
        holder = exc.holder.describe() if exc.holder else "another process"
        fail(f"the hardware is held by {holder}. If that is the chargerfw service, it does not "
             f"answer on {control_socket_path()}: check `systemctl status chargerfw`; while it "
             "runs, commands go through it", EXIT_FAILED)
    except (HardwareLockError, Unreachable) as exc:
        fail(str(exc), EXIT_UNREACHABLE)


@contextlib.contextmanager
def direct_hardware(station: Station, owner: str) -> Iterator[Board]:
    """The board, built by this process under the hardware lock (service not running)."""
    with reaching_the_hardware(), station.direct().hardware(owner) as board:
        yield board
