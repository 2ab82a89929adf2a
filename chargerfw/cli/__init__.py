"""The ``chargerfw`` command line: one click group (:mod:`.group`), one module per command
group, and :mod:`chargerfw.cli.common` for what they share.

A command's module is imported only when that command runs (click's lazy-loading group):
``chargerfw status`` does not load the backend, the simulators or the meter driver, and
``chargerfw --help`` lists the commands from :data:`COMMANDS` without importing any of them.

The console script is :func:`console`. It starts the service (``chargerfw run`` as the
systemd unit spells it) without loading click at all (:mod:`.service`), and hands every other
command line to the click group.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chargerfw.cli.group import config_option, main
    from chargerfw.config import StationConfig

__all__ = [
    "COMMANDS",
    "CONFIG_ENV",
    "LOG_LEVELS",
    "LOG_LEVEL_ENV",
    "config_option",
    "console",
    "load_config_or_exit",
    "main",
]

# The environment variables and choices of the group's and the commands' shared options.
CONFIG_ENV = "CHARGERFW_CONFIG"
LOG_LEVEL_ENV = "CHARGERFW_LOG_LEVEL"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

# name -> ("module:attribute" of its click command or group, the one line `--help` shows);
# tests/cli/test_cli_startup.py checks each line against the command's own help.
COMMANDS: dict[str, tuple[str, str]] = {
    "charging-profiles": (
        "chargerfw.cli.charging_profiles:charging_profiles_command",
        "The OCPP charging profiles installed and the schedule they give each connector.",
    ),
    "config": (
        "chargerfw.cli.config:config_group",
        "Show, read, change and validate the station config and OCPP keys.",
    ),
    "csms": (
        "chargerfw.cli.csms:csms",
        "The companion backend: OCPP 1.6J central system with an OCPI 2.2.1 CPO API.",
    ),
    "faults": (
        "chargerfw.cli.faults:faults_group",
        "Fault history (time, code, connector, active or cleared); `faults clear` acknowledges.",
    ),
    "firmware": (
        "chargerfw.cli.firmware:firmware_group",
        "The installed releases (A/B slots): status, install a release file, roll back.",
    ),
    "meter": ("chargerfw.cli.meter:meter_group", "Energy meter tools."),
    "meters": (
        "chargerfw.cli.meter:meters_command",
        "List the meter models (register maps in hw/meters).",
    ),
    "ocpp": ("chargerfw.cli.ocpp:ocpp_group", "OCPP link tools."),
    "queue": (
        "chargerfw.cli.ocpp:queue_command",
        "The outbox: transaction messages waiting for the backend (and dead ones).",
    ),
    "rfid": ("chargerfw.cli.rfid:rfid", "Token (RFID/NFC card) reader tools."),
    "run": (
        "chargerfw.cli.run:run",
        "Run the charge point: drivers, safety interlocks, charging logic and OCPP.",
    ),
    "safety": (
        "chargerfw.cli.safety:safety_group",
        "The safety process: contactor coils, fault inputs, control pilot and lock.",
    ),
    "security-log": (
        "chargerfw.cli.security_log:security_log_group",
        "The security log (OCPP security events): `show`, `clear`.",
    ),
    "selftest": (
        "chargerfw.cli.selftest:selftest_command",
        "Check config, meter, reader, pins, contactor feedback, backend, clock and disk "
        "space; a pass/fail table, exit 1 if any check failed.",
    ),
    "sim": ("chargerfw.cli.sim:sim", "Simulated hardware for bench work and tests."),
    "status": (
        "chargerfw.cli.status:status_command",
        "What the charger thinks now: connectors, pilot, transaction, backend link, "
        "outbox, faults, meter.",
    ),
    "support-bundle": (
        "chargerfw.cli.bundle:support_bundle_command",
        "One tar.gz with config (secrets redacted), recent logs, fault history, "
        "OCPP frame log, outbox summary, versions and the selftest result: send it "
        "to support.",
    ),
    "test": (
        "chargerfw.cli.hwtest:test_group",
        "Guarded hardware tests (contactor, RCD, pilot, lock).",
    ),
}


def console(args: Sequence[str] | None = None) -> None:
    """The ``chargerfw`` console script: ``args`` (default: the process's arguments)."""
    from chargerfw.cli.service import guard, safety_options, serve, service_options

    argv = list(sys.argv[1:] if args is None else args)
    if argv == ["--version"]:
        # Answered without click: an installer checks a new release's venv runs with this.
        from chargerfw import VERSION_LINE

        print(VERSION_LINE)
        return
    options = service_options(argv)
    if options is not None:
        serve(options)
    safety = safety_options(argv)
    if safety is not None:
        guard(safety)
    from chargerfw.cli.group import main

    main(args=argv, prog_name="chargerfw")


def load_config_or_exit(path: str) -> StationConfig:
    """Load the station config, or print every problem and exit with status 2."""
    from chargerfw.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"error: invalid config {exc.source}:", file=sys.stderr, flush=True)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def __getattr__(name: str) -> object:
    # The click group and the shared --config option (chargerfw.cli.group), loaded when a
    # command line needs them; command modules import them from here.
    if name in ("main", "config_option"):
        from chargerfw.cli import group

        return getattr(group, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
