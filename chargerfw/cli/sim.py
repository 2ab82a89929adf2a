"""`chargerfw sim` commands."""

from __future__ import annotations
