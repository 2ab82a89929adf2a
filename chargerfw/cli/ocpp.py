"""`chargerfw ocpp log` (the OCPP frames in and out) and `chargerfw queue` (the outbox), both
read from the store."""

from __future__ import annotations

import json

import click

from chargerfw.cli import config_option
from chargerfw.cli.common import echo_json, iso, json_option, load_station, record_dict
from chargerfw.ocppj.frames import redact_frame


@click.group("ocpp")
def ocpp_group() -> None:
    """OCPP link tools."""


@ocpp_group.command("log")
@config_option
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True)
@click.option("--direction", type=click.Choice(["in", "out"]), help="only frames in or out")
@json_option
def ocpp_log(config_path: str, limit: int, direction: str | None, as_json: bool) -> None:
    """The last OCPP frames in and out (from the store; secrets redacted)."""
    station = load_station(config_path)
    with station.store() as store:
        frames = store.frame_log(limit=None if direction else limit)
    if direction:
        frames = [f for f in frames if f.direction == direction][-limit:]
    # Redacted again here: a frame written by an older firmware may predate redaction.
    rows = [{"seq": f.seq, "at": iso(f.at), "direction": f.direction,
             "frame": redact_frame(f.frame)} for f in frames]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no OCPP frames recorded")
    for r in rows:
        arrow = "<-" if r["direction"] == "in" else "->"
        click.echo(f"{r['at']} {arrow} {r['frame']}")


@click.command("queue")
@config_option
@click.option("--all", "show_all", is_flag=True, help="also delivered messages (recent ones)")
@click.option("--limit", type=click.IntRange(1, 10000), default=200, show_default=True)
@json_option
def queue_command(config_path: str, show_all: bool, limit: int, as_json: bool) -> None:
    """The outbox: transaction messages waiting for the backend (and dead ones)."""
    station = load_station(config_path)
    with station.store() as store:
        messages = store.outbox_all(limit=limit)
    if not show_all:
        messages = [m for m in messages if m.state != "delivered"]
    rows = [record_dict(m, ("created_at", "next_attempt_at")) for m in messages]
    if as_json:
        echo_json(rows)
        return
    pending = sum(1 for m in messages if m.state == "pending")
    dead = sum(1 for m in messages if m.state == "dead")
    click.echo(f"{pending} pending, {dead} dead" + (" (nothing waiting)" if not rows else ""))
    for r in rows:
        tx = r["backend_tx_id"] if r["backend_tx_id"] is not None else "-"
        about = (f"tx {r['local_tx_id']}/{tx}" if r["local_tx_id"] is not None
                 else json.dumps(r["payload"], separators=(",", ":")))
        click.echo(f"#{r['seq']:<5} {r['action']:<16} {r['state']:<9} {about}  attempts {r['attempts']} sends {r['sends']}  queued {r['created_at']}"
                   + (f"  last error: {r['last_error']}" if r["last_error"] else ""))
