"""`chargerfw faults` (the fault history from the store, with what each fault means and what to
do) and `chargerfw faults clear` (a technician's acknowledgement of a latched fault)."""

from __future__ import annotations

import click

from chargerfw.cli import config_option
from chargerfw.cli.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    echo_json,
    fail,
    fault_advice_lines,
    fault_dict,
    json_option,
    load_station,
    reaching_the_hardware,
    station_access,
)
from chargerfw.control.access import StationAccess, Via
from chargerfw.control.api import ControlError
from chargerfw.control.client import ControlUnavailable
from chargerfw.station.technician import stored_kind


@click.group("faults", invoke_without_command=True)
@config_option
@click.option("--active", is_flag=True, help="only faults that are still active")
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True)
@json_option
@click.pass_context
def faults_group(ctx: click.Context, config_path: str, active: bool, limit: int,
                 as_json: bool) -> None:
    """Fault history (time, code, connector, active or cleared); `faults clear` acknowledges."""
    ctx.obj = {"config_path": config_path}
    if ctx.invoked_subcommand is not None:
        return
    station = load_station(config_path)
    with station.store() as store:
        records = store.faults(active_only=active, limit=limit)
    faults = [fault_dict(f) for f in records]
    if as_json:
        echo_json(faults)
        return
    if not faults:
        click.echo("no faults recorded" if not active else "no active faults")
        return
    click.echo(f"{'raised (UTC)':<21} {'code':<27} {'conn':>4}  {'state':<28} who clears")
    for f in faults:
        state = "ACTIVE" if f["state"] == "active" else f"cleared {f['cleared_at']}"
        who = "technician" if f["needs_technician"] else "self"
        click.echo(f"{f['raised_at']:<21} {f['code']:<27} {f['connector_id']:>4}  "
                   f"{state:<28} {who}" + (f"  ({f['detail']})" if f["detail"] else ""))
    active_kinds = [stored_kind(r.code) for r in records if r.cleared_at is None]
    advice = [line for kind in dict.fromkeys(active_kinds) if kind is not None
              for line in fault_advice_lines(kind)]
    if advice:
        click.echo("")
        click.echo("what the active faults mean and what to do:")
        for line in advice:
            click.echo(line)


@faults_group.command("clear")
@click.argument("code")
@config_option
@click.option("--connector", "connector_id", type=click.IntRange(0, 2),
              help="connector of the fault (0 = whole station) [default: the only active one]")
@json_option
@click.pass_context
def faults_clear(ctx: click.Context, code: str, config_path: str, connector_id: int | None,
                 as_json: bool) -> None:
    """Acknowledge a fault that needs a technician (welded contactor, repeated RCD trips,
    internal error). Faults that clear by themselves are refused, with the reason."""
    if ctx.get_parameter_source("config_path") is click.core.ParameterSource.DEFAULT:
        config_path = ctx.obj["config_path"]  # `faults -c FILE clear CODE`
    station = load_station(config_path)
    kind = stored_kind(code)
    active = []
    if kind is not None:
        with station.store() as store:
            active = [f for f in store.faults(active_only=True, limit=10000)
                      if stored_kind(f.code) is kind]
    if connector_id is not None:
        active = [f for f in active if f.connector_id == connector_id]
    if kind is None or not active:
        where = f" on connector {connector_id}" if connector_id is not None else ""
        fail(f"no active fault {code!r}{where} (see `chargerfw faults --active`)", EXIT_FAILED)
    if len(active) > 1:
        ids = ", ".join(str(f.connector_id) for f in active)
        fail(f"{code} is active on connectors {ids}: pick one with --connector", EXIT_USAGE)
    fault = active[0]
    connector = fault.connector_id
    access: StationAccess = station_access(station)
    try:
        with reaching_the_hardware():
            try:
                access.clear_fault(kind, connector)
            except ControlUnavailable as exc:  # the service went away: clear it directly
                access = station.direct(str(exc))
                access.clear_fault(kind, connector)
    except ControlError as exc:
        fail(f"the station refused to clear {code}: {exc.message}", EXIT_FAILED)
    via = "service" if access.via is Via.SERVICE else "store"
    result = {"cleared": code, "connector_id": fault.connector_id, "via": via}
    if as_json:
        echo_json(result)
    else:
        click.echo(f"cleared {code} on connector {fault.connector_id}"
                   + (" (service stopped: cleared in the store)" if via == "store" else ""))
