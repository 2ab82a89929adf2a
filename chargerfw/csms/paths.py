"""Where the backend keeps its state when it is not told: one documented place that does not
depend on the current directory.

``$STATE_DIRECTORY`` (systemd's ``StateDirectory=``), else ``$XDG_DATA_HOME/chargerfw``, else
``~/.local/share/chargerfw``; the SQLite database is ``csms.sqlite3`` there, published firmware
and uploads beside it (``csms.sqlite3.files``), or in ``csms-files`` there with PostgreSQL.
"""

from __future__ import annotations

import os
from pathlib import Path

DATABASE_NAME = "csms.sqlite3"
DEFAULT_LOCATION_HELP = ("$STATE_DIRECTORY, else $XDG_DATA_HOME/chargerfw, else "
                         "~/.local/share/chargerfw")


def backend_home() -> Path:
    """The directory of the backend's default state."""
    if state := os.environ.get("STATE_DIRECTORY"):
        return Path(state.split(":")[0])
    if data_home := os.environ.get("XDG_DATA_HOME"):
        return Path(data_home) / "chargerfw"
    return Path.home() / ".local" / "share" / "chargerfw"


def default_database() -> str:
    """The SQLite database used when no ``--db`` is given (its directory is created)."""
    home = backend_home()
    home.mkdir(parents=True, exist_ok=True)
    return str(home / DATABASE_NAME)


def default_data_dir(db: str) -> Path:
    """Where a backend keeps its files when not told: beside a SQLite database
    (``csms.sqlite3`` -> ``csms.sqlite3.files``), else ``csms-files`` in :func:`backend_home`."""
    if "://" not in db:
        return Path(db).expanduser().resolve().with_name(Path(db).name + ".files")
    return backend_home() / "csms-files"
