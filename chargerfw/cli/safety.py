"""`chargerfw safety run`: the safety process (what the chargerfw-safety unit starts)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from chargerfw.cli import config_option, load_config_or_exit
from chargerfw.logs import get_logger, setup_logging

log = get_logger(__name__)

HARDWARE_LOCK_OWNER = "chargerfw safety"


@click.group("safety")
def safety_group() -> None:
    """The safety process: contactor coils, fault inputs, control pilot and lock."""


@safety_group.command("run")
@config_option
@click.option(
    "--socket",
    "socket_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="where the station connects [default: $CHARGERFW_RUNTIME_DIR/safety.sock]",
)
@click.pass_context
def safety_run(ctx: click.Context, config_path: str, socket_path: str | None) -> None:
    """Guard the station's hardware and serve the station process.

    Exit status: 0 stopped (SIGTERM/SIGINT); 1 could not start; 2 bad config; 4 another process
    holds the hardware."""
    from chargerfw.drivers.board import build_board
    from chargerfw.hwlock import HardwareBusy, HardwareLock
    from chargerfw.safety.process import (
        SafetyProcess,
        default_socket_path,
        go_realtime,
        latched_faults_path,
    )
    from chargerfw.station.safety import SafetySettings

    config = load_config_or_exit(config_path)
    level = "INFO"
    if ctx.parent is not None and ctx.parent.get_parameter_source("log_level") not in (
        None,
        click.core.ParameterSource.DEFAULT,
    ):
        level = ctx.parent.params["log_level"]
    setup_logging(level, stream=sys.stdout)
    safety = config.safety
    for problem in go_realtime(safety.realtime_priority, safety.lock_memory):
        log.warning("safety.not_realtime", problem=problem)
    socket = Path(socket_path) if socket_path else default_socket_path()
    lock = None
    try:
        if config.hardware == "pi":
            lock = HardwareLock(HARDWARE_LOCK_OWNER)
            lock.acquire()  # the pins are ours for the process's life
        board = build_board(config)
    except HardwareBusy as exc:
        click.echo(f"error: cannot run the safety process: {exc}", err=True)
        sys.exit(4)
    except OSError as exc:
        click.echo(f"error: cannot run the safety process: {exc}", err=True)
        sys.exit(1)
    world = None
    if config.hardware == "sim":
        from chargerfw.sim.hardware import SimulatedStation
        from chargerfw.sim.world import SimulatedWorld

        world = SimulatedWorld(SimulatedStation.create(config, board, None, None))
    watchdog_output = None
    if safety.watchdog_pin is not None:
        watchdog_output = board.pin_factory.claim(safety.watchdog_pin, "safety watchdog")
        watchdog_output.setup_output(initial=False)
    process = SafetyProcess(
        config,
        board,
        socket,
        latched_faults_path(config),
        settings=SafetySettings(poll_interval_s=safety.poll_interval_ms / 1000),
        heartbeat_bound_s=safety.heartbeat_bound_ms / 1000,
        world=world,
        watchdog_output=watchdog_output,
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: process.stop())
    try:
        process.run()
    finally:
        board.close()
        if lock is not None:
            lock.release()
