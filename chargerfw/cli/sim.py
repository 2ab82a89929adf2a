"""`chargerfw sim` commands: simulated hardware for bench work."""

from __future__ import annotations

import asyncio
import contextlib
import signal

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
