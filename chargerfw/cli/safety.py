"""`chargerfw safety run`: the safety process (what the chargerfw-safety unit starts)."""

from __future__ import annotations

import click

from chargerfw.cli import config_option


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
    from chargerfw.cli.service import SafetyOptions, guard

    level = None
    root = ctx.find_root()  # the group that holds --log-level (the parent is `safety`)
    if root.get_parameter_source("log_level") not in (None, click.core.ParameterSource.DEFAULT):
        level = root.params["log_level"]
    guard(SafetyOptions(config_path, socket_path, level))
