"""`chargerfw run`: the firmware itself (what systemd starts)."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from chargerfw.cli import config_option, load_config_or_exit
from chargerfw.logs import get_logger, setup_logging

if TYPE_CHECKING:
    from chargerfw.config import StationConfig

log = get_logger(__name__)

control_socket_option = click.option(
    "--control-socket", type=click.Path(dir_okay=False), envvar="CHARGERFW_CONTROL_SOCKET",
    default=None,
    help="local control socket [default: $CHARGERFW_RUNTIME_DIR/control.sock, "
         "CHARGERFW_RUNTIME_DIR defaults to /run/chargerfw]",
)


async def run_station(config: StationConfig, control_socket: Path,
                      on_started: Callable[[object], None] | None = None) -> int:
    """Run the station until SIGTERM/SIGINT or a Reset; return the process exit code.

    A Soft reset builds a fresh runtime in this process; a Hard reset returns
    ``HARD_RESET_EXIT_CODE`` so systemd (Restart=on-failure) starts a new process."""
    from chargerfw.runtime.station import HARD_RESET_EXIT_CODE, RunOutcome, StationRuntime

    simulator = None
    if config.hardware == "sim":
        from chargerfw.sim.hardware import simulated_hardware

        simulator = simulated_hardware
    loop = asyncio.get_running_loop()
    while True:
        runtime = StationRuntime(config, control_socket=control_socket, simulator=simulator)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, runtime.request_stop)
        if on_started is not None:
            on_started(runtime)
        try:
            outcome = await runtime.run()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
        if outcome is RunOutcome.SOFT_RESET:
            log.info("station.soft_reset_restart")
            continue
        return HARD_RESET_EXIT_CODE if outcome is RunOutcome.HARD_RESET else 0


@click.command()
@config_option
@control_socket_option
@click.pass_context
def run(ctx: click.Context, config_path: str, control_socket: str | None) -> None:
    """Run the charge point: drivers, safety interlocks, charging logic and OCPP.

    Exit status: 0 stopped (SIGTERM/SIGINT); 1 could not start (config, state directory);
    2 bad config; 3 hard reset (systemd restarts it); 4 another process holds the hardware
    lock (hardware = "pi") or serves the same control socket (the message names it)."""
    from chargerfw.control.client import default_socket_path
    from chargerfw.control.server import ControlSocketInUse
    from chargerfw.hwlock import HardwareBusy, HardwareLockError
    from chargerfw.runtime.station import BUSY_EXIT_CODE

    config = load_config_or_exit(config_path)
    if config.ocpp is None:
        click.echo(f"error: {config_path}: [ocpp] section is required to run the station",
                   err=True)
        raise SystemExit(2)
    # journald keeps stdout. Without an explicit --log-level the service logs at INFO (the
    # CLI's WARNING default would leave the journal silent).
    level = "INFO"
    if ctx.parent is not None and ctx.parent.get_parameter_source("log_level") not in (
            None, click.core.ParameterSource.DEFAULT):
        level = ctx.parent.params["log_level"]
    setup_logging(level, stream=sys.stdout)
    socket_path = Path(control_socket) if control_socket else default_socket_path()
    try:
        code = asyncio.run(run_station(config, socket_path))
    except (HardwareBusy, ControlSocketInUse) as exc:
        # Another `chargerfw run`, or a technician's command driving the hardware directly.
        log.error("station.busy", error=str(exc),
                  holder=exc.holder.describe() if exc.holder else None)
        click.echo(f"error: cannot run the station: {exc}", err=True)
        sys.exit(BUSY_EXIT_CODE)
    except HardwareLockError as exc:  # the runtime directory is missing or not ours
        log.error("station.start_failed", error=str(exc))
        click.echo(f"error: cannot run the station: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:  # state or runtime directory not writable, port taken, ...
        log.error("station.start_failed", error=str(exc))
        click.echo(f"error: cannot run the station: {exc}", err=True)
        sys.exit(1)
    sys.exit(code)
