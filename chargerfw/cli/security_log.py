"""`chargerfw security-log show` (the station's security log, as GetLog(SecurityLog) uploads it)
and `security-log clear` (a technician empties it; the log then starts with the
SecurityLogWasCleared event, which the backend is also sent)."""

from __future__ import annotations

import click

from chargerfw.cli import config_option
from chargerfw.cli.common import echo_json, json_option, load_station
from chargerfw.control.bundle import security_log_text
from chargerfw.ocpp.security_log import SECURITY_LOG_CLEARED, record_security_event
from chargerfw.timestamps import iso_utc


@click.group("security-log")
def security_log_group() -> None:
    """The security log (OCPP security events): `show`, `clear`."""


@security_log_group.command("show")
@config_option
@json_option
def security_log_show(config_path: str, as_json: bool) -> None:
    """Every security event recorded, oldest first: time (UTC), type, technical information."""
    station = load_station(config_path)
    with station.store() as store:
        if as_json:
            echo_json([{"at": iso_utc(e.at), "type": e.type, "tech_info": e.tech_info}
                       for e in store.security_events()])
            return
        click.echo(security_log_text(store), nl=False)


@security_log_group.command("clear")
@config_option
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@json_option
def security_log_clear(config_path: str, yes: bool, as_json: bool) -> None:
    """Empty the security log. Recorded as SecurityLogWasCleared (sent to the backend)."""
    station = load_station(config_path)
    with station.store() as store:
        if not yes:
            click.confirm(f"clear {len(store.security_events())} security log entries?",
                          abort=True)
        cleared = store.security_log_clear()
        record_security_event(store, SECURITY_LOG_CLEARED,
                              f"{cleared} entries cleared by a technician")
    if as_json:
        echo_json({"cleared": cleared})
    else:
        click.echo(f"cleared {cleared} security log entries")
