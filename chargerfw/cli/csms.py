"""`chargerfw csms` commands: the companion backend."""

from __future__ import annotations
