"""`chargerfw charging-profiles`: the OCPP charging profiles the backend installed and the
composite schedule they give each connector (connector 0: the charge point's total), from the
running service (with its transactions) or, with the service stopped, from the store."""

from __future__ import annotations

from typing import Literal

import click

from chargerfw.cli import config_option
from chargerfw.cli.common import (
    EXIT_FAILED,
    EXIT_UNREACHABLE,
    echo_json,
    fail,
    json_option,
    reaching_the_hardware,
    station_access,
)
from chargerfw.control.access import Via
from chargerfw.control.api import (
    ChargingProfilesReply,
    ChargingProfilesRequest,
    ControlError,
    encode_reply,
)
from chargerfw.control.client import ControlUnavailable


def profile_lines(reply: ChargingProfilesReply) -> list[str]:
    """The human view: one line per profile, then each connector's schedule."""
    lines = []
    if not reply.profiles:
        lines.append("profiles   none installed")
    for p in reply.profiles:
        schedule = p["charging_schedule"]
        periods = ", ".join(f"+{q['start_period']} s {q['limit']:g} {schedule['charging_rate_unit']}"
                            for q in schedule["charging_schedule_period"])
        where = "charge point" if p["connector_id"] == 0 else f"connector {p['connector_id']}"
        extra = [p["charging_profile_kind"]]
        if "recurrency_kind" in p:
            extra.append(p["recurrency_kind"])
        if "start_schedule" in schedule:
            extra.append(f"from {schedule['start_schedule']}")
        if "duration" in schedule:
            extra.append(f"for {schedule['duration']} s")
        if "transaction_id" in p:
            extra.append(f"transaction {p['transaction_id']}")
        if p.get("awaiting_start"):
            extra.append("waiting for its transaction")
        lines.append(f"profile {p['charging_profile_id']}  {p['charging_profile_purpose']}  "
                     f"stack level {p['stack_level']}  {where}  {' '.join(extra)}: {periods}")
    for s in reply.schedules:
        where = "charge point" if s.connector == 0 else f"connector {s.connector}"
        steps = ", ".join(f"+{q.start_period} s {q.limit:g} {s.unit}" for q in s.periods)
        lines.append(f"schedule   {where} from {s.start} for {s.duration_s} s: {steps}")
    return lines


@click.command("charging-profiles")
@config_option
@click.option("--connector", type=click.IntRange(0, 2), default=None,
              help="only this connector's schedule (0 = the charge point) [default: all]")
@click.option("--duration", type=click.IntRange(0, 31 * 86400), default=86400,
              show_default=True, help="seconds of schedule to show")
@click.option("--unit", type=click.Choice(["A", "W"]), default="A", show_default=True)
@json_option
def charging_profiles_command(config_path: str, connector: int | None, duration: int,
                              unit: Literal["A", "W"], as_json: bool) -> None:
    """The OCPP charging profiles installed and the schedule they give each connector."""
    request = ChargingProfilesRequest(connector, duration, unit)
    access = station_access(config_path)
    try:
        with reaching_the_hardware():
            reply = access.charging_profiles(request)
    except ControlUnavailable as exc:
        fail(f"the service stopped answering: {exc}", EXIT_UNREACHABLE)
    except ControlError as exc:
        fail(exc.message, EXIT_FAILED)
    if as_json:
        echo_json(encode_reply(ChargingProfilesRequest, reply))
        return
    if access.via is Via.DIRECT:
        click.echo("service    not running: the store's profiles, without transactions")
    for line in profile_lines(reply):
        click.echo(line)
