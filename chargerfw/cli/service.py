"""What the two services do, without the command line library: ``chargerfw run`` (the
station) and ``chargerfw safety run`` (the safety process) start as systemd spells them
(``chargerfw --log-level INFO run --config FILE``) without loading click.

:func:`service_options` and :func:`safety_options` read that one shape: ``--log-level`` before
the command; ``--config`` (or ``-c``) and the command's socket option after it, each as
``--name value`` or ``--name=value``; the same environment variables and defaults as the click
options. Any other command line, a help or a value click would refuse included, is left to the
click group (None), whose ``run`` and ``safety run`` commands (:mod:`chargerfw.cli.run`,
:mod:`chargerfw.cli.safety`) call the same :func:`serve` and :func:`guard`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, NoReturn

from chargerfw.cli import CONFIG_ENV, LOG_LEVEL_ENV, LOG_LEVELS, load_config_or_exit
from chargerfw.logs import get_logger, setup_logging

if TYPE_CHECKING:
    from chargerfw.config import StationConfig
    from chargerfw.drivers.board import Board
    from chargerfw.runtime.station import StationRuntime
    from chargerfw.safety.process import SafetyProcess

log = get_logger(__name__)


class ServiceOptions(NamedTuple):
    config_path: str
    control_socket: str | None  # None: $CHARGERFW_RUNTIME_DIR/control.sock
    log_level: str | None  # None: not given, the service logs at INFO


class SafetyOptions(NamedTuple):
    config_path: str
    socket: str | None  # None: $CHARGERFW_RUNTIME_DIR/safety.sock
    log_level: str | None


# Option name -> the value it sets, before and after the command name.
_GROUP_OPTIONS = {"--log-level": "log_level"}
_CONFIG_OPTIONS = {"--config": "config_path", "-c": "config_path"}
_RUN_OPTIONS = {**_CONFIG_OPTIONS, "--control-socket": "socket"}
_SAFETY_RUN_OPTIONS = {**_CONFIG_OPTIONS, "--socket": "socket"}


def service_options(args: Sequence[str]) -> ServiceOptions | None:
    """The options of a ``chargerfw run`` command line of the one shape above; None for any
    other command line."""
    if "run" not in args:
        return None
    from chargerfw.control.client import SOCKET_ENV

    given = _command_line(args, ("run",), _RUN_OPTIONS, SOCKET_ENV)
    if given is None:
        return None
    return ServiceOptions(given["config_path"], given.get("socket"), given.get("log_level"))


def safety_options(args: Sequence[str]) -> SafetyOptions | None:
    """The options of a ``chargerfw safety run`` command line of the one shape above."""
    given = _command_line(args, ("safety", "run"), _SAFETY_RUN_OPTIONS, None)
    if given is None:
        return None
    return SafetyOptions(given["config_path"], given.get("socket"), given.get("log_level"))


def _command_line(
    args: Sequence[str], command: tuple[str, ...], options: dict[str, str], socket_env: str | None
) -> dict[str, str] | None:
    """``--log-level`` options, ``command``, then ``options``; the values given (config path
    and log level resolved as click would), or None for any other command line."""
    if command[-1] not in args:
        return None
    from chargerfw.config import DEFAULT_CONFIG_PATH

    given: dict[str, str] = {}
    rest = list(args)
    accepted = _GROUP_OPTIONS
    while rest:
        if accepted is _GROUP_OPTIONS and tuple(rest[: len(command)]) == command:
            accepted, rest = options, rest[len(command) :]
            continue
        name, eq, value = rest[0].partition("=")
        if name not in accepted or (eq and not name.startswith("--")):
            return None  # another option or command, or a form left to click (-c=FILE)
        if not eq:
            if len(rest) < 2 or rest[1].startswith("-"):
                return None
            value, rest = rest[1], rest[1:]
        if not value:
            return None
        given[accepted[name]] = value
        rest = rest[1:]
    if accepted is _GROUP_OPTIONS:
        return None  # no command
    level = given.get("log_level") or os.environ.get(LOG_LEVEL_ENV) or None
    if level is not None and level.upper() not in LOG_LEVELS:
        return None
    given["config_path"] = (
        given.get("config_path") or os.environ.get(CONFIG_ENV) or str(DEFAULT_CONFIG_PATH)
    )
    socket = given.get("socket") or (os.environ.get(socket_env) if socket_env else None)
    if socket:
        given["socket"] = socket
    if not all(_usable_file_path(p) for p in (given["config_path"], socket) if p):
        return None
    if level is not None:
        given["log_level"] = level.upper()
    return given


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


def guard(options: SafetyOptions) -> NoReturn:
    """Run the safety process until SIGTERM/SIGINT (see ``chargerfw safety run --help``).

    Exit status: 0 stopped; 1 could not start; 2 bad config; 4 another process holds the
    hardware."""
    import signal

    from chargerfw.hwlock import HardwareBusy, HardwareLock
    from chargerfw.safety.process import default_socket_path

    config = load_config_or_exit(options.config_path)
    # A simulated world's Modbus server needs TLS support loaded; nothing on a Pi does.
    problems = prepare_safety_interpreter(config, without_tls=config.hardware == "pi")
    setup_logging(options.log_level or "INFO", stream=sys.stdout)
    for problem in problems:
        log.warning("safety.not_realtime", problem=problem)
    socket = Path(options.socket) if options.socket else default_socket_path()
    lock = None
    try:
        if config.hardware == "pi":
            lock = HardwareLock(SAFETY_LOCK_OWNER)
            lock.acquire()  # the pins are ours for the process's life
        process = build_safety_process(config, socket)
    except HardwareBusy as exc:
        _fail(f"cannot run the safety process: {exc}")
        sys.exit(4)
    except OSError as exc:
        _fail(f"cannot run the safety process: {exc}")
        sys.exit(1)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: process.stop())
    try:
        process.run()
    finally:
        process.board.close()
        if lock is not None:
            lock.release()
    sys.exit(0)


SAFETY_LOCK_OWNER = "chargerfw safety"


def prepare_safety_interpreter(config: StationConfig, *, without_tls: bool) -> list[str]:
    """Set the safety process's interpreter up, before any thread starts and before the first
    log line: small thread stacks, optionally no TLS, then real-time scheduling and locked
    memory as configured. Returns what could not be done (the process runs without it)."""
    import threading

    from chargerfw.safety.process import THREAD_STACK_BYTES, go_realtime

    # With mlockall every thread's stack is resident in full.
    threading.stack_size(THREAD_STACK_BYTES)
    # asyncio (which the logging library imports) loads OpenSSL when it can: ~5 MiB resident,
    # locked with the rest.
    if without_tls and "ssl" not in sys.modules:
        sys.modules["ssl"] = None  # type: ignore[assignment]  # import ssl: ImportError
    return go_realtime(config.safety.realtime_priority, config.safety.lock_memory)


def build_safety_process(
    config: StationConfig, socket: Path, board: Board | None = None,
    *, simulated_world: bool = True,
) -> SafetyProcess:
    """The safety process as ``chargerfw safety run`` builds it: the configured board (or
    ``board``), its watchdog output, and with simulated hardware the simulated world (unless
    ``simulated_world`` is False: a bench drives the simulated parts itself)."""
    from chargerfw.drivers.board import build_board
    from chargerfw.safety.process import SafetyProcess, latched_faults_path
    from chargerfw.station.safety import SafetySettings

    safety = config.safety
    board = board if board is not None else build_board(config)
    world = None
    if config.hardware == "sim" and simulated_world:
        from chargerfw.sim.hardware import SimulatedStation
        from chargerfw.sim.world import SimulatedWorld

        world = SimulatedWorld(SimulatedStation.create(config, board, None, None))
    watchdog_output = None
    if safety.watchdog_pin is not None:
        watchdog_output = board.pin_factory.claim(safety.watchdog_pin, "safety watchdog")
        watchdog_output.setup_output(initial=False)
    return SafetyProcess(
        config,
        board,
        socket,
        latched_faults_path(config),
        settings=SafetySettings(poll_interval_s=safety.poll_interval_ms / 1000),
        heartbeat_bound_s=safety.heartbeat_bound_ms / 1000,
        world=world,
        watchdog_output=watchdog_output,
    )


RESET_RETRY_DELAY_S = 2.0


def trial_self_test(runtime: StationRuntime) -> Callable[[], Awaitable[list[str]]]:
    """A new firmware release's self-test at its first start: the checks `chargerfw selftest`
    makes of a running service that say whether this release works (pins readable, contactor
    feedback, free disk for the store). Not the wiring (the config's) or a pressed emergency
    stop (the site's): neither is the release's doing. The failed checks, "name: detail"."""

    async def check() -> list[str]:
        from chargerfw.cli.checks import CheckStatus, check_disk, hardware_checks_service
        from chargerfw.control.api import StatusRequest

        status = runtime.handlers.status(StatusRequest())
        results = [check_disk(runtime.config.storage.path),
                   *(r for r in hardware_checks_service(status) if r.name != "fault inputs")]
        return [f"{r.name}: {r.detail}" for r in results if r.status is CheckStatus.FAIL]

    return check


async def run_station(
    config: StationConfig,
    control_socket: Path,
    on_started: Callable[[object], None] | None = None,
    *,
    make_runtime: Callable[[], StationRuntime] | None = None,
    reset_retry_delay_s: float = RESET_RETRY_DELAY_S,
) -> int:
    """Run the station until SIGTERM/SIGINT or a Reset; return the process exit code.

    A Soft reset builds a fresh runtime in this process; a Hard reset returns
    ``HARD_RESET_EXIT_CODE`` so systemd (Restart=on-failure) starts a new process.

    ResetRetries: a soft reset is unsuccessful when the fresh runtime fails before it is
    ready (a device that does not open, the store, a lock another process holds). It is tried
    again, ``reset_retry_delay_s`` apart, as many times as ResetRetries said when the reset
    was asked for; when every retry failed too the reset becomes a hard one (the process exits
    with ``HARD_RESET_EXIT_CODE`` and systemd starts a new one). A start that fails other than
    after a reset raises, as before."""
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
    if make_runtime is None:

        def make_runtime() -> StationRuntime:
            runtime = StationRuntime(config, control_socket=control_socket,
                                     simulator=simulator, safety_socket=safety_socket)
            runtime.self_test = trial_self_test(runtime)
            return runtime

    loop = asyncio.get_running_loop()
    retries_left: int | None = None  # after a soft reset: restarts that may still fail
    while True:
        runtime = make_runtime()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, runtime.request_stop)
        if on_started is not None:
            on_started(runtime)
        try:
            outcome = await runtime.run()
        except Exception as exc:
            if retries_left is None or runtime.ready.is_set():
                raise
            if retries_left == 0:
                log.error("station.reset_failed", error=repr(exc), then="hard_reset")
                return HARD_RESET_EXIT_CODE
            retries_left -= 1
            log.warning("station.reset_retry", error=repr(exc), retries_left=retries_left)
            await asyncio.sleep(reset_retry_delay_s)
            continue
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
        if outcome is RunOutcome.SOFT_RESET:
            retries_left = runtime.reset_retries
            log.info("station.soft_reset_restart", reset_retries=retries_left)
            continue
        return HARD_RESET_EXIT_CODE if outcome is RunOutcome.HARD_RESET else 0
