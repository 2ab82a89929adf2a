"""Real releases of the current tree for the install tests: the source is copied (so the build
leaves the tree alone and a second copy can carry a higher version) and built into a release
carrying the chargerfw wheel only (installed with pip --no-deps: building every dependency's
wheel would need the network and minutes)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import chargerfw
from chargerfw.release.build import build_release, release_file_name

ROOT = Path(__file__).resolve().parents[2]
SOURCE_PARTS = ("chargerfw", "hw", "setup.cfg", "pyproject.toml", "README.md")

# The release tests' signing key, the same in every module and xdist worker: a release of one
# version is then built once per test run and copied, where each module on each worker built
# its own (a wheel build takes seconds).
RELEASE_KEY = Ed25519PrivateKey.from_private_bytes(
    hashlib.sha256(b"chargerfw release tests").digest())


def source_with_version(into: Path, version: str) -> Path:
    """A copy of the tree's package sources whose chargerfw.__version__ is ``version``."""
    for part in SOURCE_PARTS:
        src = ROOT / part
        if src.is_dir():
            shutil.copytree(src, into / part,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, into / part)
    init = into / "chargerfw" / "__init__.py"
    text = init.read_text()
    old = f'__version__ = "{chargerfw.__version__}"'
    assert old in text
    init.write_text(text.replace(old, f'__version__ = "{version}"'))
    return into


def _run_dir(workdir: Path) -> Path:
    """The directory of this pytest run, shared by its xdist workers (pytest-N, which holds
    each worker's popen-gwN); ``workdir`` itself outside one."""
    for parent in workdir.resolve().parents:
        if re.fullmatch(r"pytest-\d+", parent.name):
            return parent
    return workdir


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the kernel drops it if the holder dies
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def build_test_release(workdir: Path, version: str, key: Ed25519PrivateKey,
                       min_previous_version: str = "0") -> Path:
    """A release of the tree as ``version`` in ``workdir``: a copy of the one this test run
    built for the same version, minimum and key (the tree does not change during a run)."""
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()[:16]
    cache = _run_dir(workdir) / "release-builds" / f"{version}-{min_previous_version}-{public}"
    cache.mkdir(parents=True, exist_ok=True)
    archive = cache / "dist" / release_file_name(version)
    with _locked(cache / "lock"):
        if not archive.exists():  # written aside and renamed: only a whole one exists
            source = source_with_version(workdir / "src", version)
            built = build_release(source, archive.parent, key,
                                  min_previous_version=min_previous_version,
                                  with_dependencies=False)
            assert built == archive, built
    copy = workdir / "dist" / archive.name
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(archive, copy)
    return copy
