"""`chargerfw run`: the firmware itself (what systemd starts). The click command; the service
usually starts without click, through :mod:`chargerfw.cli.service`, which does the work."""

from __future__ import annotations

import click

from chargerfw.cli import config_option
from chargerfw.cli.service import ServiceOptions, serve
from chargerfw.control.client import SOCKET_ENV

control_socket_option = click.option(
    "--control-socket", type=click.Path(dir_okay=False), envvar=SOCKET_ENV,
    default=None,
    help="local control socket [default: $CHARGERFW_RUNTIME_DIR/control.sock, "
         "CHARGERFW_RUNTIME_DIR defaults to /run/chargerfw]",
)


@click.command()
@config_option
@control_socket_option
@click.pass_context
def run(ctx: click.Context, config_path: str, control_socket: str | None) -> None:
    """Run the charge point: drivers, safety interlocks, charging logic and OCPP.

    Exit status: 0 stopped (SIGTERM/SIGINT); 1 could not start (config, state directory);
    2 bad config; 3 hard reset (systemd restarts it); 4 another process holds the hardware
    lock (hardware = "pi") or serves the same control socket (the message names it)."""
    level = None
    if ctx.parent is not None and ctx.parent.get_parameter_source("log_level") not in (
            None, click.core.ParameterSource.DEFAULT):
        level = ctx.parent.params["log_level"]
    serve(ServiceOptions(config_path, control_socket, level))
