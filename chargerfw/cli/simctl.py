"""One command per action on a running simulated station: ``chargerfw sim tap 04A1B2C3``.

Each command sends one ``sim.*`` request over the station's control socket (the same socket
the technician's commands use), so the station under test is the real runtime.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from chargerfw.cli.sim import sim
from chargerfw.diagnostics import (
    EXIT_FAILED,
    EXIT_UNREACHABLE,
    ServiceError,
    ServiceUnavailable,
    call_service,
    control_socket_path,
)

# command name -> (control method, help, takes --connector)
SIMPLE_ACTIONS: dict[str, tuple[str, str, bool]] = {
    "plug": ("sim.plug", "Plug the simulated vehicle in (pilot state B).", True),
    "charge": ("sim.charge", "The vehicle asks for energy (pilot state C).", True),
    "stop-charging": ("sim.stop_charging", "The vehicle stops asking (back to B).", True),
    "unplug": ("sim.unplug", "Unplug the vehicle (pilot state A).", True),
    "short-pilot": ("sim.short_pilot", "Short the control pilot (state E).", True),
    "clear-short": ("sim.clear_short", "Remove the pilot short.", True),
    "remove-diode": ("sim.remove_diode", "Take the vehicle's pilot diode out (diode fault).", True),
    "restore-diode": ("sim.restore_diode", "Put the pilot diode back.", True),
    "weld": ("sim.weld", "Weld the contactor's contacts (mirror contact stays closed).", True),
    "fail-to-close": ("sim.fail_to_close", "Make the contactor fail to close.", True),
    "repair": ("sim.repair", "Repair a welded or stuck contactor.", True),
    "rcd-trip": ("sim.rcd_trip", "Trip the residual current monitor.", False),
    "rcd-clear": ("sim.rcd_clear", "Release the residual current monitor.", False),
    "estop-press": ("sim.estop_press", "Press the emergency stop.", False),
    "estop-release": ("sim.estop_release", "Release the emergency stop.", False),
}

socket_option = click.option(
    "--control-socket", type=click.Path(dir_okay=False), default=None,
    help="the station's control socket [default: $CHARGERFW_CONTROL_SOCKET, else "
         "$CHARGERFW_RUNTIME_DIR/control.sock]",
)
json_option = click.option("--json", "as_json", is_flag=True, help="print the reply as JSON")
connector_option = click.option("--connector", "-n", type=click.IntRange(1, 2), default=1,
                                show_default=True)


def _send(method: str, control_socket: str | None, as_json: bool, **params: Any) -> None:
    from pathlib import Path

    path = Path(control_socket) if control_socket else control_socket_path()
    try:
        result = call_service(method, socket_path=path, **params)
    except ServiceUnavailable as exc:
        click.echo(f"error: no simulated station answers on {path}: {exc}", err=True)
        click.echo("start one with `make sim` (or `chargerfw sim station`) and export the "
                   "CHARGERFW_RUNTIME_DIR it prints", err=True)
        raise SystemExit(EXIT_UNREACHABLE) from None
    except ServiceError as exc:
        click.echo(f"error: the station refused {method}: {exc.message}", err=True)
        raise SystemExit(EXIT_FAILED) from None
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
    else:
        click.echo(", ".join(f"{k}: {v}" for k, v in (result or {}).items()) or "ok")


def _simple_command(name: str, method: str, help_text: str, per_connector: bool) -> None:
    def run(control_socket: str | None, as_json: bool, connector: int | None = None) -> None:
        params = {"connector": connector} if per_connector else {}
        _send(method, control_socket, as_json, **params)

    command: Callable[..., None] = json_option(socket_option(run))
    if per_connector:
        command = connector_option(command)
    sim.command(name, help=help_text)(command)


for _name, (_method, _help, _per_connector) in SIMPLE_ACTIONS.items():
    _simple_command(_name, _method, _help, _per_connector)


@sim.command("tap")
@click.argument("uid")
@click.option("--hold", "hold_s", type=click.FloatRange(0, 10), default=0.3, show_default=True,
              help="seconds the card stays on the reader")
@socket_option
@json_option
def sim_tap(uid: str, hold_s: float, control_socket: str | None, as_json: bool) -> None:
    """Tap a card with UID (hex, e.g. 04A1B2C3D4E5F6) on the simulated reader."""
    _send("sim.tap", control_socket, as_json, uid=uid, hold_s=hold_s)


@sim.command("temperature")
@click.argument("celsius", type=float)
@connector_option
@socket_option
@json_option
def sim_temperature(celsius: float, connector: int, control_socket: str | None,
                    as_json: bool) -> None:
    """Set the connector's simulated temperature sensor."""
    _send("sim.temperature", control_socket, as_json, celsius=celsius, connector=connector)


@sim.command("overdraw")
@click.argument("amps", type=float)
@connector_option
@socket_option
@json_option
def sim_overdraw(amps: float, connector: int, control_socket: str | None, as_json: bool) -> None:
    """Make the vehicle draw AMPS more than the pilot offers (0 to stop)."""
    _send("sim.overdraw", control_socket, as_json, amps=amps, connector=connector)
