"""Where a simulation keeps its files: a directory the user names (kept afterwards, to look
into), or a temporary one removed at the end."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def kept_or_temporary_dir(given: Path | None, prefix: str) -> Iterator[Path]:
    """``given`` (created if missing, kept), or a new temporary directory named ``prefix``…
    that is removed when the block ends."""
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        yield given
        return
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
