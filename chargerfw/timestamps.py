"""Timestamps on the wire and on disk (a base module: imports nothing from chargerfw)."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_utc(ts: float) -> str:
    """An OCPP timestamp (UTC, millisecond precision, 'Z')."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{int(ts * 1000) % 1000:03d}Z"
