"""The ``chargerfw`` command line: one click group, one module per command group, and
:mod:`chargerfw.cli.common` for what they share."""

from __future__ import annotations

import sys

import click

from chargerfw import __version__
from chargerfw.config import DEFAULT_CONFIG_PATH, ConfigError, StationConfig, load_config
from chargerfw.logs import setup_logging


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
    try:
        return load_config(path)
    except ConfigError as exc:
        click.echo(f"error: invalid config {exc.source}:", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
        raise SystemExit(2) from None


# Command groups register themselves on `main` when imported.
from chargerfw.cli import (  # noqa: E402,F401
    bundle,
    config,
    csms,
    faults,
    hwtest,
    meter,
    ocpp,
    rfid,
    run,
    selftest,
    sim,
    status,
)
