"""The ``chargerfw`` command line: one click group, one module per command group, and
:mod:`chargerfw.cli.common` for what they share.

A command's module is imported only when that command runs (click's lazy-loading group):
``chargerfw status`` does not load the backend, the simulators or the meter driver, and
``chargerfw --help`` lists the commands from :data:`COMMANDS` without importing any of them.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import click

from chargerfw import __version__
from chargerfw.config import DEFAULT_CONFIG_PATH
from chargerfw.logs import setup_logging

if TYPE_CHECKING:
    from chargerfw.config import StationConfig

# name -> ("module:attribute" of its click command or group, the one line `--help` shows);
# tests/cli/test_cli_startup.py checks each line against the command's own help.
COMMANDS: dict[str, tuple[str, str]] = {
    "config": ("chargerfw.cli.config:config_group",
               "Show, read, change and validate the station config and OCPP keys."),
    "csms": ("chargerfw.cli.csms:csms",
             "The companion backend: OCPP 1.6J central system with an OCPI 2.2.1 CPO API."),
    "faults": ("chargerfw.cli.faults:faults_group",
               "Fault history (time, code, connector, active or cleared); `faults clear` "
               "acknowledges."),
    "meter": ("chargerfw.cli.meter:meter_group", "Energy meter tools."),
    "meters": ("chargerfw.cli.meter:meters_command",
               "List the meter models (register maps in hw/meters)."),
    "ocpp": ("chargerfw.cli.ocpp:ocpp_group", "OCPP link tools."),
    "queue": ("chargerfw.cli.ocpp:queue_command",
              "The outbox: transaction messages waiting for the backend (and dead ones)."),
    "rfid": ("chargerfw.cli.rfid:rfid", "Token (RFID/NFC card) reader tools."),
    "run": ("chargerfw.cli.run:run",
            "Run the charge point: drivers, safety interlocks, charging logic and OCPP."),
    "selftest": ("chargerfw.cli.selftest:selftest_command",
                 "Check config, meter, reader, pins, contactor feedback, backend, clock and disk "
                 "space; a pass/fail table, exit 1 if any check failed."),
    "sim": ("chargerfw.cli.sim:sim", "Simulated hardware for bench work and tests."),
    "status": ("chargerfw.cli.status:status_command",
               "What the charger thinks now: connectors, pilot, transaction, backend link, "
               "outbox, faults, meter."),
    "support-bundle": ("chargerfw.cli.bundle:support_bundle_command",
                       "One tar.gz with config (secrets redacted), recent logs, fault history, "
                       "OCPP frame log, outbox summary, versions and the selftest result: send it "
                       "to support."),
    "test": ("chargerfw.cli.hwtest:test_group",
             "Guarded hardware tests (contactor, RCD, pilot, lock)."),
}


class LazyGroup(click.Group):
    """A group whose ``lazy_subcommands`` (name -> ("module:attribute", one-line help)) are
    imported when one runs; its help lists them from their one-line help."""

    def __init__(self, *args: Any, lazy_subcommands: Mapping[str, tuple[str, str]],
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_subcommands = lazy_subcommands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy_subcommands])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.lazy_subcommands:
            return super().get_command(ctx, cmd_name)
        module_name, _, attribute = self.lazy_subcommands[cmd_name][0].partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{module_name}:{attribute} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in self.lazy_subcommands:  # shortened as click shortens a command's help
                listed = click.Command(name, help=self.lazy_subcommands[name][1])
                rows.append((name, listed.get_short_help_str(limit)))
            elif (command := super().get_command(ctx, name)) is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, lazy_subcommands=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="chargerfw")
@click.option("--log-level", default="WARNING", show_default=True, envvar="CHARGERFW_LOG_LEVEL",
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def main(log_level: str) -> None:
    """Charge-point controller firmware for Raspberry Pi EV chargers."""
    # Commands print results on stdout (some as JSON); their logs go to stderr.
    # `chargerfw run` switches its logs to stdout for journald.
    setup_logging(log_level, stream=sys.stderr)


config_option = click.option(
    "--config", "-c", "config_path", type=click.Path(dir_okay=False), envvar="CHARGERFW_CONFIG",
    default=str(DEFAULT_CONFIG_PATH), show_default=True, help="station config file (TOML)",
)


def load_config_or_exit(path: str) -> StationConfig:
    """Load the station config, or print every problem and exit with status 2."""
    from chargerfw.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        click.echo(f"error: invalid config {exc.source}:", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
        raise SystemExit(2) from None

