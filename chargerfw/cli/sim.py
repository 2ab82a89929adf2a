"""`chargerfw sim` commands: simulated hardware for bench work (a meter, a whole station, a
fleet of stations), and one command per action on a running simulated station
(``chargerfw sim tap 04A1B2C3``): each sends one ``sim.*`` request over the station's control
socket (the same socket the technician's commands use), so the station under test is the real
runtime."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import msgspec

from chargerfw.cli.common import EXIT_FAILED, EXIT_UNREACHABLE
from chargerfw.config import known_meter_models
from chargerfw.control.api import (
    ControlError,
    Request,
    SimChargeRequest,
    SimClearShortRequest,
    SimEstopPressRequest,
    SimEstopReleaseRequest,
    SimFailToCloseRequest,
    SimOverdrawRequest,
    SimPlugRequest,
    SimRcdClearRequest,
    SimRcdTripRequest,
    SimRemoveDiodeRequest,
    SimRepairRequest,
    SimRestoreDiodeRequest,
    SimShortPilotRequest,
    SimStopChargingRequest,
    SimTamperCloseRequest,
    SimTamperOpenRequest,
    SimTapRequest,
    SimTemperatureRequest,
    SimUnplugRequest,
    SimWeldRequest,
    encode_reply,
)

if TYPE_CHECKING:
    from chargerfw.sim.fleet import FleetReport
    from chargerfw.sim.meter import SimulatedMeter


@click.group()
def sim() -> None:
    """Simulated hardware for bench work and tests."""


# -- sim meter ---------------------------------------------------------------------------------


async def _serve_meter(meter: SimulatedMeter, port: str | None, tcp: tuple[str, int] | None,
                       baudrate: int | None, parity: str | None) -> None:
    from chargerfw.sim.meter import serve_rtu, serve_tcp

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if tcp is not None:
        async with serve_tcp(meter, tcp[0], tcp[1]) as (host, bound):
            where = f"tcp {host}:{bound}"
            click.echo(f"serving {meter.map.name} on {where} unit {meter.unit_id} "
                       f"(Ctrl-C to stop)")
            await stop.wait()
    else:
        assert port is not None
        async with serve_rtu(meter, port, baudrate=baudrate, parity=parity):
            s = meter.map.serial
            where = f"rtu {port} {baudrate or s.baudrate} 8{parity or s.parity}{s.stopbits}"
            click.echo(f"serving {meter.map.name} on {where} unit {meter.unit_id} "
                       f"(Ctrl-C to stop)")
            await stop.wait()
    click.echo("stopped")


@sim.command("meter")
@click.option("--model", required=True, type=click.Choice(known_meter_models()))
@click.option("--port", help="serial port or pty to serve Modbus RTU on")
@click.option("--tcp", "tcp", metavar="HOST:PORT", help="serve Modbus TCP (port 0: any free)")
@click.option("--power", "power_w", type=float, default=0.0, show_default=True,
              help="total active power in W (negative: export)")
@click.option("--voltage", "voltage_v", type=float, default=230.0, show_default=True)
@click.option("--frequency", "frequency_hz", type=float, default=50.0, show_default=True)
@click.option("--energy", "energy_wh", type=float, default=0.0, show_default=True,
              help="import energy counter at start, Wh")
@click.option("--unit", "unit_id", type=click.IntRange(1, 247),
              help="Modbus unit id [default: the model's]")
@click.option("--baud", "baudrate", type=int, help="RTU baud rate [default: the model's]")
@click.option("--parity", type=click.Choice(["N", "E", "O"], case_sensitive=False),
              help="RTU parity [default: the model's]")
def sim_meter(model: str, port: str | None, tcp: str | None, power_w: float, voltage_v: float,
              frequency_hz: float, energy_wh: float, unit_id: int | None, baudrate: int | None,
              parity: str | None) -> None:
    """Run a simulated energy meter until Ctrl-C."""
    from chargerfw.cli.meter import _parse_tcp
    from chargerfw.drivers.meter.driver import quiet_pymodbus
    from chargerfw.sim.meter import SimulatedMeter

    if bool(port) == bool(tcp):
        raise click.UsageError("give exactly one of --port (RTU) or --tcp HOST:PORT")
    address = None
    if tcp:
        host, _, tcp_port = tcp.rpartition(":")
        address = (host, 0) if tcp_port == "0" and host else _parse_tcp(tcp)
    try:
        meter = SimulatedMeter(model, unit_id=unit_id, energy_import_wh=energy_wh,
                               voltage_jitter_v=0.2)
        meter.set_load(power_w=power_w, voltage_v=voltage_v, frequency_hz=frequency_hz)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    quiet_pymodbus()
    try:
        asyncio.run(_serve_meter(meter, port, address, baudrate,
                                 parity.upper() if parity else None))
    except (OSError, RuntimeError) as exc:
        click.echo(f"error: cannot serve {model} on {port or tcp}: {exc}", err=True)
        raise SystemExit(3) from None


# -- sim station -------------------------------------------------------------------------------


def _default_sim_config() -> str:
    from chargerfw.hwdata import data_path

    return str(data_path("stations") / "sim.toml")


def _sim_socket_path(control_socket: str | None, state_dir: Path) -> Path:
    """--control-socket, else $CHARGERFW_RUNTIME_DIR/control.sock, else (no env and no
    writable /run/chargerfw) <state dir>/control.sock."""
    from chargerfw.control.client import default_socket_path
    from chargerfw.hwlock import DEFAULT_RUNTIME_DIR

    if control_socket:
        return Path(control_socket)
    if os.environ.get("CHARGERFW_RUNTIME_DIR"):
        return default_socket_path()
    if DEFAULT_RUNTIME_DIR.is_dir() and os.access(DEFAULT_RUNTIME_DIR, os.W_OK):
        return default_socket_path()
    return state_dir / "control.sock"


@sim.command("station")
@click.option("--config", "-c", "config_path", type=click.Path(dir_okay=False),
              default=_default_sim_config, show_default="the packaged hw/stations/sim.toml",
              help="station config (hardware = \"sim\" is forced)")
@click.option("--csms", "csms_url", metavar="URL",
              help="a CSMS to connect to (ws://host:port/ocpp); default: start the bundled "
                   "backend (chargerfw csms) in this process")
@click.option("--backend-ocpp-port", type=click.IntRange(0, 65535), default=9000,
              show_default=True, help="bundled backend: OCPP port (0: any free)")
@click.option("--backend-api-port", type=click.IntRange(0, 65535), default=9001,
              show_default=True, help="bundled backend: OCPI API port (0: any free)")
@click.option("--control-socket", type=click.Path(dir_okay=False),
              help="control socket [default: $CHARGERFW_RUNTIME_DIR/control.sock, else "
                   "/run/chargerfw/control.sock if writable, else next to the state]")
@click.option("--demo", is_flag=True,
              help="after boot: plug in, tap a card, charge, stop by tapping again, unplug")
@click.option("--demo-seconds", type=click.FloatRange(1, 3600), default=20.0,
              show_default=True, help="how long the demo charges")
def sim_station(config_path: str, csms_url: str | None, backend_ocpp_port: int,
                backend_api_port: int, control_socket: str | None, demo: bool,
                demo_seconds: float) -> None:
    """Run the whole station on simulated hardware until Ctrl-C."""
    from chargerfw.cli import load_config_or_exit
    from chargerfw.logs import setup_logging

    config = load_config_or_exit(config_path)
    if config.ocpp is None:
        raise click.UsageError(f"{config_path} has no [ocpp] section")
    config = msgspec.structs.replace(config, hardware="sim")
    if csms_url is not None and not csms_url.startswith(("ws://", "wss://")):
        raise click.UsageError("--csms must be a ws:// or wss:// URL")
    state_dir = config.storage.path.parent
    state_dir.mkdir(parents=True, exist_ok=True)
    socket_path = _sim_socket_path(control_socket, state_dir).absolute()
    log_file = state_dir / "station.log"
    # The person at the terminal reads the station's story; the structured log goes to a file.
    stream = open(log_file, "a", buffering=1)  # lives as long as the process
    setup_logging("INFO", stream=stream)
    try:
        code = asyncio.run(_run_sim_station(config, csms_url, backend_ocpp_port,
                                            backend_api_port, socket_path, demo, demo_seconds,
                                            log_file))
    except OSError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(3) from None
    raise SystemExit(code)


async def _run_sim_station(config: object, csms_url: str | None, ocpp_port: int, api_port: int,
                           socket_path: Path, demo: bool, demo_seconds: float,
                           log_file: Path) -> int:
    from chargerfw.cli.service import run_station
    from chargerfw.config import StationConfig
    from chargerfw.runtime.station import StationRuntime
    from chargerfw.sim.station import (
        DEMO_TAG,
        bundled_backend,
        run_demo,
        station_event_printer,
        with_backend_url,
    )

    assert isinstance(config, StationConfig)
    echo = click.echo
    demo_tasks: list[asyncio.Task[None]] = []

    def started(runtime: object) -> None:
        assert isinstance(runtime, StationRuntime)
        runtime.event_listeners.append(station_event_printer(echo))
        if demo and not demo_tasks:  # once, not again after a soft reset
            demo_tasks.append(asyncio.get_running_loop().create_task(
                run_demo(runtime, echo, DEMO_TAG, demo_seconds)))

    async with contextlib.AsyncExitStack() as stack:
        if csms_url is None:
            backend = await stack.enter_async_context(bundled_backend(
                config.storage.path.parent / "csms.sqlite3", ocpp_port, api_port,
                station=config, demo_tag=DEMO_TAG))
            csms_url = backend.ocpp_url
            echo(f"backend: bundled chargerfw csms, OCPP {backend.ocpp_url}, "
                 f"OCPI {backend.api_url}, db {backend.db}")
        config = with_backend_url(config, csms_url)
        assert config.ocpp is not None
        echo(f"station: {config.station.id} on simulated hardware -> {config.ocpp.url}")
        echo(f"station: control socket {socket_path} "
             f"(export CHARGERFW_RUNTIME_DIR={socket_path.parent} for the CLI)")
        echo(f"station: log {log_file}; Ctrl-C stops")
        try:
            return await run_station(config, socket_path, on_started=started)
        finally:
            for task in demo_tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


# -- sim fleet ---------------------------------------------------------------------------------


def _packaged_scenario(name_or_path: str) -> str:
    """A path as given, or, when no such file exists, the packaged hw/scenarios/<name>.toml."""
    from chargerfw.hwdata import data_path

    if Path(name_or_path).exists() or "/" in name_or_path:
        return name_or_path
    packaged = data_path("scenarios") / f"{name_or_path.removesuffix('.toml')}.toml"
    return str(packaged) if packaged.is_file() else name_or_path


@sim.command("fleet")
@click.option("--count", "-n", required=True, type=click.IntRange(1, 10_000),
              help="how many simulated chargers")
@click.option("--csms", "csms_url", required=True, metavar="URL",
              help="the OCPP 1.6J backend, ws://host:port/path (the charge point id is added)")
@click.option("--scenario", "scenario_path", type=click.Path(dir_okay=False),
              help="scenario file (TOML), or the name of a packaged one: "
                   "basic-session, rcd-fault")
@click.option("--random", "random_mode", is_flag=True,
              help="random plausible sessions until --duration or Ctrl-C")
@click.option("--duration", "duration_s", type=click.FloatRange(0, min_open=True),
              help="stop after this many seconds (scenario: a cap)")
@click.option("--seed", default=0, show_default=True, type=int,
              help="random mode: the same seed plays the same sessions")
@click.option("--id-prefix", default="FLEET-", show_default=True,
              help="charge point ids are the prefix and a number: FLEET-001 ...")
@click.option("--password", envvar="CHARGERFW_FLEET_PASSWORD", default=None,
              help="HTTP Basic password of every charger (security profile 1)")
@click.option("--stagger", "stagger_s", type=click.FloatRange(0, 3600),
              help="seconds between two chargers' starts [default: the scenario's; random 0.1]")
@click.option("--meter-interval", "meter_values_interval_s", type=click.IntRange(0, 86400),
              default=10, show_default=True, help="MeterValueSampleInterval of every charger")
@click.option("--safety-poll", "safety_poll_s", type=click.FloatRange(0.01, 10),
              default=1.0, show_default=True,
              help="each charger's safety monitor period in seconds (the firmware uses 0.1)")
@click.option("--state-dir", type=click.Path(file_okay=False),
              help="keep each charger's store here [default: a temporary directory, removed]")
@click.option("--control-sockets", is_flag=True,
              help="one control socket per charger in its state directory")
@click.option("--json", "as_json", is_flag=True, help="the report as JSON on stdout")
@click.option("--log-file", type=click.Path(dir_okay=False),
              help="the chargers' structured log [default: only errors, to stderr]")
def sim_fleet(count: int, csms_url: str, scenario_path: str | None, random_mode: bool,
              duration_s: float | None, seed: int, id_prefix: str, password: str | None,
              stagger_s: float | None, meter_values_interval_s: int, safety_poll_s: float,
              state_dir: str | None, control_sockets: bool, as_json: bool,
              log_file: str | None) -> None:
    """Run N simulated chargers against an OCPP backend and report what was sent and what
    failed. Exit code 1 if a step failed or a charger was never accepted, 130 on Ctrl-C."""
    import json
    import sys

    from chargerfw.logs import setup_logging
    from chargerfw.sim.fleet import Fleet, FleetError, FleetSettings, render_report, run_fleet
    from chargerfw.sim.scenario import ScenarioError, load_scenario

    if bool(scenario_path) == random_mode:
        raise click.UsageError("give exactly one of --scenario FILE or --random")
    scenario = None
    if scenario_path:
        scenario_path = _packaged_scenario(scenario_path)
        try:
            scenario = load_scenario(scenario_path)
        except ScenarioError as exc:
            click.echo(f"error: {scenario_path}:", err=True)
            for problem in exc.problems:
                click.echo(f"  {problem}", err=True)
            raise SystemExit(2) from None
    try:
        settings = FleetSettings(
            count=count, csms_url=csms_url.rstrip("/"), id_prefix=id_prefix, password=password,
            state_dir=Path(state_dir).absolute() if state_dir else None, seed=seed,
            duration_s=duration_s, stagger_s=stagger_s, safety_poll_s=safety_poll_s,
            meter_values_interval_s=meter_values_interval_s, control_sockets=control_sockets)
    except FleetError as exc:
        raise click.UsageError(str(exc)) from None
    # Hundreds of stations log a lot: to a file when asked, else only errors to stderr.
    if log_file:
        setup_logging("INFO", stream=open(log_file, "a", buffering=1))
    else:
        setup_logging("ERROR", stream=sys.stderr)
    progress = (lambda line: click.echo(line, err=True)) if as_json else click.echo

    async def main_task() -> FleetReport:
        loop = asyncio.get_running_loop()
        fleet_holder: list[Fleet] = []

        def on_signal() -> None:
            if fleet_holder:
                progress("fleet: stopping (Ctrl-C again to abort) ...")
                fleet_holder[0].request_stop()
                for signum in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(signum)

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal)
        return await run_fleet(settings, scenario, echo=progress,
                               on_fleet=lambda fleet: fleet_holder.append(fleet))

    try:
        report = asyncio.run(main_task())
    except FleetError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    except OSError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(3) from None
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(render_report(report))
    raise SystemExit(report.exit_code())


# -- actions on a running simulated station ------------------------------------------------------

# command name -> (the request it sends, help)
CONNECTOR_ACTIONS: dict[str, tuple[Callable[[int], Request[Any]], str]] = {
    "plug": (SimPlugRequest, "Plug the simulated vehicle in (pilot state B)."),
    "charge": (SimChargeRequest, "The vehicle asks for energy (pilot state C)."),
    "stop-charging": (SimStopChargingRequest, "The vehicle stops asking (back to B)."),
    "unplug": (SimUnplugRequest, "Unplug the vehicle (pilot state A)."),
    "short-pilot": (SimShortPilotRequest, "Short the control pilot (state E)."),
    "clear-short": (SimClearShortRequest, "Remove the pilot short."),
    "remove-diode": (SimRemoveDiodeRequest, "Take the vehicle's pilot diode out (diode fault)."),
    "restore-diode": (SimRestoreDiodeRequest, "Put the pilot diode back."),
    "weld": (SimWeldRequest, "Weld the contactor's contacts (mirror contact stays closed)."),
    "fail-to-close": (SimFailToCloseRequest, "Make the contactor fail to close."),
    "repair": (SimRepairRequest, "Repair a welded or stuck contactor."),
}
STATION_ACTIONS: dict[str, tuple[Callable[[], Request[Any]], str]] = {
    "rcd-trip": (SimRcdTripRequest, "Trip the residual current monitor."),
    "rcd-clear": (SimRcdClearRequest, "Release the residual current monitor."),
    "estop-press": (SimEstopPressRequest, "Press the emergency stop."),
    "estop-release": (SimEstopReleaseRequest, "Release the emergency stop."),
    "tamper-open": (SimTamperOpenRequest, "Open the enclosure's tamper contact."),
    "tamper-close": (SimTamperCloseRequest, "Close the tamper contact again."),
}

socket_option = click.option(
    "--control-socket", type=click.Path(dir_okay=False), default=None,
    help="the station's control socket [default: $CHARGERFW_CONTROL_SOCKET, else "
         "$CHARGERFW_RUNTIME_DIR/control.sock]",
)
reply_json_option = click.option("--json", "as_json", is_flag=True,
                                 help="print the reply as JSON")
connector_option = click.option("--connector", "-n", type=click.IntRange(1, 2), default=1,
                                show_default=True)


def _send(request: Request[Any], control_socket: str | None, as_json: bool) -> None:
    from chargerfw.control.client import ControlClient, ControlUnavailable, control_socket_path

    path = Path(control_socket) if control_socket else control_socket_path()
    method = request.method.value
    try:
        reply = ControlClient(path).request(request)
    except ControlUnavailable as exc:
        click.echo(f"error: no simulated station answers on {path}: {exc}", err=True)
        click.echo("start one with `make sim` (or `chargerfw sim station`) and export the "
                   "CHARGERFW_RUNTIME_DIR it prints", err=True)
        raise SystemExit(EXIT_UNREACHABLE) from None
    except ControlError as exc:
        click.echo(f"error: the station refused {method}: {exc.message}", err=True)
        raise SystemExit(EXIT_FAILED) from None
    result = encode_reply(type(request), reply)
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
    else:
        click.echo(", ".join(f"{k}: {v}" for k, v in (result or {}).items()) or "ok")


def _connector_command(name: str, make: Callable[[int], Request[Any]], help_text: str) -> None:
    @sim.command(name, help=help_text)
    @connector_option
    @socket_option
    @reply_json_option
    def command(connector: int, control_socket: str | None, as_json: bool) -> None:
        _send(make(connector), control_socket, as_json)


def _station_command(name: str, make: Callable[[], Request[Any]], help_text: str) -> None:
    @sim.command(name, help=help_text)
    @socket_option
    @reply_json_option
    def command(control_socket: str | None, as_json: bool) -> None:
        _send(make(), control_socket, as_json)


for _name, (_make_for_connector, _help) in CONNECTOR_ACTIONS.items():
    _connector_command(_name, _make_for_connector, _help)
for _name, (_make, _help) in STATION_ACTIONS.items():
    _station_command(_name, _make, _help)


@sim.command("tap")
@click.argument("uid")
@click.option("--hold", "hold_s", type=click.FloatRange(0, 10), default=0.3, show_default=True,
              help="seconds the card stays on the reader")
@socket_option
@reply_json_option
def sim_tap(uid: str, hold_s: float, control_socket: str | None, as_json: bool) -> None:
    """Tap a card with UID (hex, e.g. 04A1B2C3D4E5F6) on the simulated reader."""
    _send(SimTapRequest(uid, hold_s), control_socket, as_json)


@sim.command("temperature")
@click.argument("celsius", type=float)
@connector_option
@socket_option
@reply_json_option
def sim_temperature(celsius: float, connector: int, control_socket: str | None,
                    as_json: bool) -> None:
    """Set the connector's simulated temperature sensor."""
    _send(SimTemperatureRequest(celsius, connector), control_socket, as_json)


@sim.command("overdraw")
@click.argument("amps", type=float)
@connector_option
@socket_option
@reply_json_option
def sim_overdraw(amps: float, connector: int, control_socket: str | None, as_json: bool) -> None:
    """Make the vehicle draw AMPS more than the pilot offers (0 to stop)."""
    _send(SimOverdrawRequest(amps, connector), control_socket, as_json)
