"""The click group of ``chargerfw``: the commands of :data:`chargerfw.cli.COMMANDS`, each
imported when it runs, and the options they share."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from typing import Any

import click

from chargerfw import VERSION_LINE, __version__
from chargerfw.cli import COMMANDS, CONFIG_ENV, LOG_LEVEL_ENV, LOG_LEVELS
from chargerfw.config import DEFAULT_CONFIG_PATH
from chargerfw.logs import setup_logging


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
@click.version_option(__version__, prog_name="chargerfw", message=VERSION_LINE)
@click.option("--log-level", default="WARNING", show_default=True, envvar=LOG_LEVEL_ENV,
              type=click.Choice(LOG_LEVELS, case_sensitive=False))
def main(log_level: str) -> None:
    """Charge-point controller firmware for Raspberry Pi EV chargers."""
    # Commands print results on stdout (some as JSON); their logs go to stderr.
    # `chargerfw run` switches its logs to stdout for journald.
    setup_logging(log_level, stream=sys.stderr)


config_option = click.option(
    "--config", "-c", "config_path", type=click.Path(dir_okay=False), envvar=CONFIG_ENV,
    default=str(DEFAULT_CONFIG_PATH), show_default=True, help="station config file (TOML)",
)
