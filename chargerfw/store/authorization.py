"""The authorization cache and the local authorization list (the station core's ``AuthStore``)."""

from __future__ import annotations

import time
from collections.abc import Mapping

from chargerfw.station.auth import IdTagInfo
from chargerfw.store.database import Database
from chargerfw.store.records import (
    StoreError,
    check_id_tag,
    check_int,
    info_from_json,
    info_to_json,
)


class AuthorizationCache:
    """IdTagInfo the backend sent, remembered per idTag (AuthorizationCacheEnabled)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, id_tag: str) -> IdTagInfo | None:
        """The cached IdTagInfo for ``id_tag``, or None."""
        with self._db.read() as conn:
            row = conn.execute("SELECT info FROM auth_cache WHERE id_tag = ?",
                               (id_tag,)).fetchone()
        return None if row is None else info_from_json(row["info"])

    def put(self, id_tag: str, info: IdTagInfo) -> None:
        check_id_tag(id_tag)
        text = info_to_json(info)
        with self._db.tx(durable=False) as conn:
            conn.execute(
                "INSERT INTO auth_cache (id_tag, info, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (id_tag) DO UPDATE SET info = excluded.info, "
                "updated_at = excluded.updated_at",
                (id_tag, text, time.time()),
            )

    def clear(self) -> None:
        with self._db.tx() as conn:
            conn.execute("DELETE FROM auth_cache")


class LocalList:
    """The local authorization list the backend sends (SendLocalList), with its version."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, id_tag: str) -> IdTagInfo | None:
        """The local authorization list entry for ``id_tag``, or None."""
        with self._db.read() as conn:
            row = conn.execute("SELECT info FROM local_list WHERE id_tag = ?",
                               (id_tag,)).fetchone()
        return None if row is None else info_from_json(row["info"])

    def version(self) -> int:
        with self._db.read() as conn:
            return int(conn.execute("SELECT version FROM local_list_meta").fetchone()[0])

    def size(self) -> int:
        with self._db.read() as conn:
            return int(conn.execute("SELECT count(*) FROM local_list").fetchone()[0])

    def apply(self, version: int, entries: Mapping[str, IdTagInfo | None], full: bool) -> None:
        """SendLocalList: ``full`` replaces the list; otherwise a differential update where an
        entry of None removes the tag. All-or-nothing."""
        check_int("listVersion", version, minimum=1)
        rows = []
        for id_tag, info in entries.items():
            check_id_tag(id_tag)
            rows.append((id_tag, None if info is None else info_to_json(info)))
        if full and any(text is None for _, text in rows):
            raise StoreError("a full local list update must give idTagInfo for every entry")
        with self._db.tx() as conn:
            if full:
                conn.execute("DELETE FROM local_list")
            for id_tag, text in rows:
                if text is None:
                    conn.execute("DELETE FROM local_list WHERE id_tag = ?", (id_tag,))
                else:
                    conn.execute(
                        "INSERT INTO local_list (id_tag, info) VALUES (?, ?) "
                        "ON CONFLICT (id_tag) DO UPDATE SET info = excluded.info",
                        (id_tag, text),
                    )
            conn.execute("UPDATE local_list_meta SET version = ?", (version,))
