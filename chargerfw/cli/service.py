"""What ``chargerfw run`` does, without the command line library: the service starts as
systemd spells it (``chargerfw --log-level INFO run --config FILE``) without loading click.

:func:`service_options` reads that one shape: ``--log-level`` before ``run``; ``--config`` (or
``-c``) and ``--control-socket`` after it, each as ``--name value`` or ``--name=value``; the
same environment variables and defaults as the click options. Any other command line, a help
or a value click would refuse included, is left to the click group (None), whose ``run``
command (:mod:`chargerfw.cli.run`) calls the same :func:`serve`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, NoReturn

from chargerfw.cli import CONFIG_ENV, LOG_LEVEL_ENV, LOG_LEVELS, load_config_or_exit
from chargerfw.logs import get_logger, setup_logging

if TYPE_CHECKING:
    from chargerfw.config import StationConfig

log = get_logger(__name__)


class ServiceOptions(NamedTuple):
    config_path: str
    control_socket: str | None  # None: $CHARGERFW_RUNTIME_DIR/control.sock
    log_level: str | None  # None: not given, the service logs at INFO


# Option name -> the value it sets, before and after the command name.
_GROUP_OPTIONS = {"--log-level": "log_level"}
_RUN_OPTIONS = {
    "--config": "config_path",
    "-c": "config_path",
    "--control-socket": "control_socket",
}


def service_options(args: Sequence[str]) -> ServiceOptions | None:
    """The options of a ``chargerfw run`` command line of the one shape above; None for any
    other command line."""
    if "run" not in args:
        return None
    from chargerfw.config import DEFAULT_CONFIG_PATH
    from chargerfw.control.client import SOCKET_ENV

    given: dict[str, str] = {}
    rest = list(args)
    options = _GROUP_OPTIONS
    while rest:
        if rest[0] == "run" and options is _GROUP_OPTIONS:
            options, rest = _RUN_OPTIONS, rest[1:]
            continue
        name, eq, value = rest[0].partition("=")
        if name not in options or (eq and not name.startswith("--")):
            return None  # another option or command, or a form left to click (-c=FILE)
        if not eq:
            if len(rest) < 2 or rest[1].startswith("-"):
                return None
            value, rest = rest[1], rest[1:]
        if not value:
            return None
        given[options[name]] = value
        rest = rest[1:]
    if options is _GROUP_OPTIONS:
        return None  # no command
    level = given.get("log_level") or os.environ.get(LOG_LEVEL_ENV) or None
    if level is not None and level.upper() not in LOG_LEVELS:
        return None
    config_path = given.get("config_path") or os.environ.get(CONFIG_ENV) or str(DEFAULT_CONFIG_PATH)
    control_socket = given.get("control_socket") or os.environ.get(SOCKET_ENV) or None
    if not all(_usable_file_path(p) for p in (config_path, control_socket) if p is not None):
        return None
    return ServiceOptions(config_path, control_socket, level.upper() if level else None)


def _usable_file_path(path: str) -> bool:
    """What click.Path(dir_okay=False) accepts: absent, or a readable non-folder."""
    return not os.path.exists(path) or (not os.path.isdir(path) and os.access(path, os.R_OK))


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)


def serve(options: ServiceOptions) -> NoReturn:
    """Run the station as configured until it stops; exit with its status (see ``chargerfw
    run --help``)."""
    import asyncio

    from chargerfw.control.client import default_socket_path
    from chargerfw.control.server import ControlSocketInUse
    from chargerfw.hwlock import HardwareBusy, HardwareLockError
    from chargerfw.runtime.station import BUSY_EXIT_CODE

    config = load_config_or_exit(options.config_path)
    if config.ocpp is None:
        _fail(f"{options.config_path}: [ocpp] section is required to run the station")
        raise SystemExit(2)
    # journald keeps stdout. Without an explicit --log-level the service logs at INFO (the
    # CLI's WARNING default would leave the journal silent).
    setup_logging(options.log_level or "INFO", stream=sys.stdout)
    socket_path = Path(options.control_socket) if options.control_socket else default_socket_path()
    try:
        code = asyncio.run(run_station(config, socket_path))
    except (HardwareBusy, ControlSocketInUse) as exc:
        # Another `chargerfw run`, or a technician's command driving the hardware directly.
        log.error(
            "station.busy", error=str(exc), holder=exc.holder.describe() if exc.holder else None
        )
        _fail(f"cannot run the station: {exc}")
        sys.exit(BUSY_EXIT_CODE)
    except HardwareLockError as exc:  # the runtime directory is missing or not ours
        log.error("station.start_failed", error=str(exc))
        _fail(f"cannot run the station: {exc}")
        sys.exit(1)
    except OSError as exc:  # state or runtime directory not writable, port taken, ...
        log.error("station.start_failed", error=str(exc))
        _fail(f"cannot run the station: {exc}")
        sys.exit(1)
    sys.exit(code)


async def run_station(
    config: StationConfig, control_socket: Path, on_started: Callable[[object], None] | None = None
) -> int:
    """Run the station until SIGTERM/SIGINT or a Reset; return the process exit code.

    A Soft reset builds a fresh runtime in this process; a Hard reset returns
    ``HARD_RESET_EXIT_CODE`` so systemd (Restart=on-failure) starts a new process."""
    import asyncio
    import signal

    from chargerfw.runtime.station import HARD_RESET_EXIT_CODE, RunOutcome, StationRuntime

    simulator = None
    if config.hardware == "sim":
        from chargerfw.sim.hardware import simulated_hardware

        simulator = simulated_hardware
    safety_socket = None
    if config.safety_mode == "process":
        from chargerfw.safety.process import default_socket_path as safety_socket_path

        safety_socket = safety_socket_path()
    loop = asyncio.get_running_loop()
    while True:
        runtime = StationRuntime(
            config, control_socket=control_socket, simulator=simulator, safety_socket=safety_socket
        )
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
