"""`chargerfw meter` commands."""

from __future__ import annotations
