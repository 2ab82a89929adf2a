"""`chargerfw sim` commands: simulated hardware for bench work."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import click

from chargerfw.cli import main
from chargerfw.config import known_meter_models


@main.group()
def sim() -> None:
    """Simulated hardware for bench work and tests."""


# -- sim meter ---------------------------------------------------------------------------------


async def _serve_meter(meter: object, port: str | None, tcp: tuple[str, int] | None,
                       serial: dict[str, object]) -> None:
    from chargerfw.sim.meter import SimulatedMeter, serve_rtu, serve_tcp

    assert isinstance(meter, SimulatedMeter)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    server: contextlib.AbstractAsyncContextManager
    if tcp is not None:
        server = serve_tcp(meter, tcp[0], tcp[1])
    else:
        assert port is not None
        server = serve_rtu(meter, port, **serial)  # type: ignore[arg-type]
    async with server as bound:
        if tcp is not None:
            where = f"tcp {bound[0]}:{bound[1]}"
        else:
            s = meter.map.serial
            where = (f"rtu {port} {serial.get('baudrate') or s.baudrate} "
                     f"8{serial.get('parity') or s.parity}{serial.get('stopbits') or s.stopbits}")
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
    serial = {"baudrate": baudrate, "parity": parity.upper() if parity else None}
    quiet_pymodbus()
    try:
        asyncio.run(_serve_meter(meter, port, address, serial))
    except (OSError, RuntimeError) as exc:
        click.echo(f"error: cannot serve {model} on {port or tcp}: {exc}", err=True)
        raise SystemExit(3) from None


# -- sim station -------------------------------------------------------------------------------


def _default_sim_config() -> str:
    from chargerfw.hw import data_path

    return str(data_path("stations") / "sim.toml")


def _sim_socket_path(control_socket: str | None, state_dir: Path) -> Path:
    """--control-socket, else $CHARGERFW_RUNTIME_DIR/control.sock, else (no env and no
    writable /run/chargerfw) <state dir>/control.sock."""
    from chargerfw.runtime.control import DEFAULT_RUNTIME_DIR, default_socket_path

    if control_socket:
        return Path(control_socket)
    if os.environ.get("CHARGERFW_RUNTIME_DIR"):
        return default_socket_path()
    run_dir = Path(DEFAULT_RUNTIME_DIR)
    if run_dir.is_dir() and os.access(run_dir, os.W_OK):
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
    config = config.model_copy(update={"hardware": "sim"})
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
    from chargerfw.cli.run import run_station
    from chargerfw.config import StationConfig
    from chargerfw.runtime.simstation import (
        DEMO_TAG,
        bundled_backend,
        run_demo,
        station_event_printer,
        with_backend_url,
    )
    from chargerfw.runtime.station import StationRuntime

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
                DEMO_TAG))
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
