"""`chargerfw rfid` commands."""

from __future__ import annotations
