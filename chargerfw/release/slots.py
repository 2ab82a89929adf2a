"""A/B install of a release under a prefix::

    <prefix>/releases/<version>/   one slot: its own venv, wheels/, manifest.json, .complete
    <prefix>/current  -> releases/<version>     what the station runs
    <prefix>/previous -> releases/<version>     what rollback returns to

A slot gets its ``.complete`` marker last, after its venv runs ``chargerfw --version``; a link
is only ever pointed at a complete slot and replaced atomically (symlink to a temporary name,
then ``os.replace``), so a power cut at any step leaves ``current`` at a complete slot.
Configuration and the store live elsewhere (/etc/chargerfw, /var/lib/chargerfw) and are
never touched here.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from chargerfw.durable import sync_directory
from chargerfw.logs import get_logger
from chargerfw.release.archive import extract_release, verify_release
from chargerfw.release.manifest import (
    MANIFEST_NAME,
    WHEELS_DIR,
    ReleaseError,
    parse_manifest,
)
from chargerfw.release.trial import install_boot_script

log = get_logger(__name__)

COMPLETE_MARKER = ".complete"
RELEASES_DIR = "releases"
CURRENT_LINK = "current"
PREVIOUS_LINK = "previous"
LOCK_NAME = ".lock"
DEFAULT_PREFIX = Path("/opt/chargerfw")
DEFAULT_PUBLIC_KEY = Path("/etc/chargerfw/release-signing.pub")


class InstallFailed(ReleaseError):
    """Building the slot's venv failed; the slot was removed and ``current`` left alone."""


@dataclass(frozen=True)
class Slot:
    path: Path
    version: str


@dataclass(frozen=True)
class SlotStatus:
    current: Slot | None
    previous: Slot | None


def is_complete(slot: Path) -> bool:
    return (slot / COMPLETE_MARKER).is_file()


def _linked_slot(prefix: Path, link: str) -> Slot | None:
    path = prefix / link
    if not path.is_symlink():
        return None
    target = path.resolve()
    if not is_complete(target):
        return None
    try:
        manifest = parse_manifest((target / MANIFEST_NAME).read_bytes())
    except (OSError, ReleaseError):
        return None
    return Slot(target, manifest.version)


def slot_status(prefix: Path) -> SlotStatus:
    """The complete slots ``current`` and ``previous`` point at (None where a link is missing
    or its slot is not complete)."""
    return SlotStatus(_linked_slot(prefix, CURRENT_LINK), _linked_slot(prefix, PREVIOUS_LINK))


def _point(prefix: Path, link: str, slot: Path) -> None:
    """Point ``prefix/link`` at ``slot`` atomically (relative, so the prefix can move)."""
    if not is_complete(slot):
        raise ReleaseError(f"{slot} is not a complete slot")
    temporary = prefix / f".{link}.{os.getpid()}.tmp"
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(os.path.relpath(slot, prefix))
    os.replace(temporary, prefix / link)
    sync_directory(prefix)


def _remove_unused_slots(prefix: Path) -> None:
    """Slots neither link points at (older releases, ones an interrupted install left) and
    temporary links a cut switch left."""
    keep = {(prefix / link).resolve() for link in (CURRENT_LINK, PREVIOUS_LINK)
            if (prefix / link).is_symlink()}
    for temporary in prefix.glob(".*.tmp"):
        if temporary.is_symlink():
            temporary.unlink()
    releases = prefix / RELEASES_DIR
    if not releases.is_dir():
        return
    for slot in releases.iterdir():
        if slot.resolve() not in keep:
            shutil.rmtree(slot, ignore_errors=True)
            log.info("release.slot_removed", slot=str(slot))


def _slot_env() -> dict[str, str]:
    """The environment for the new slot's tools: none of this process's import paths."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=_slot_env())
    if done.returncode != 0:
        raise InstallFailed(f"{what} failed (exit {done.returncode}): "
                            f"{(done.stderr or done.stdout).strip()[-2000:]}")


def install_release(archive: Path, prefix: Path, public_key: Ed25519PublicKey, *,
                    python: str | None = None, with_dependencies: bool = True,
                    before_switch: Callable[[Slot], None] | None = None) -> Slot:
    """Verify ``archive``, build its slot and make it current; the old current becomes
    previous. ``with_dependencies=False`` installs the chargerfw wheel alone (pip --no-deps),
    for a release that carries only that wheel. ``before_switch`` runs once the new slot is
    complete, just before the links change (an exception from it leaves them alone). The boot
    launcher ``<prefix>/bin/chargerfw-boot`` is refreshed from this version's copy."""
    prefix.mkdir(parents=True, exist_ok=True)
    (prefix / RELEASES_DIR).mkdir(exist_ok=True)
    with _prefix_lock(prefix):
        return _install_locked(archive, prefix, public_key, python, with_dependencies,
                               before_switch)


@contextlib.contextmanager
def _prefix_lock(prefix: Path) -> Iterator[None]:
    """One install or rollback at a time per prefix (the kernel drops it if the holder dies)."""
    with open(prefix / LOCK_NAME, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ReleaseError(f"another install or rollback is running in {prefix}") from None
        yield


def _install_locked(archive: Path, prefix: Path, public_key: Ed25519PublicKey,
                    python: str | None, with_dependencies: bool,
                    before_switch: Callable[[Slot], None] | None) -> Slot:
    status = slot_status(prefix)
    installed_version = status.current.version if status.current else None
    # Checked whole before anything is written; extracting checks every hash again.
    manifest = verify_release(archive, public_key, installed_version=installed_version).manifest
    _remove_unused_slots(prefix)
    slot = prefix / RELEASES_DIR / manifest.version
    if status.current is not None and slot.resolve() == status.current.path:
        raise ReleaseError(f"version {manifest.version} is already current")
    log.info("release.install_start", version=manifest.version, slot=str(slot),
             installed=installed_version)
    # The previous slot may be this version (reinstall): it is rebuilt, so drop the link first.
    if status.previous is not None and slot.resolve() == status.previous.path:
        (prefix / PREVIOUS_LINK).unlink()
    shutil.rmtree(slot, ignore_errors=True)
    slot.mkdir()
    try:
        extract_release(archive, slot, public_key, installed_version=installed_version)
        _run([python or sys.executable, "-m", "venv", str(slot)], "creating the venv")
        pip = [str(slot / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-index",
               "--disable-pip-version-check", "--find-links", str(slot / WHEELS_DIR)]
        if not with_dependencies:
            pip.append("--no-deps")
        _run([*pip, f"chargerfw=={manifest.version}"], "installing the wheels")
        _check_runs(slot, manifest.version)
        # Everything the slot holds reaches the disk before the marker can.
        os.sync()
        marker = slot / COMPLETE_MARKER
        with open(marker, "w") as handle:
            handle.write(manifest.version + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        sync_directory(slot)
    except BaseException:
        shutil.rmtree(slot, ignore_errors=True)
        raise
    install_boot_script(prefix)
    if before_switch is not None:
        before_switch(Slot(slot, manifest.version))
    # Previous first: after it both links point at complete slots, so a cut before the
    # switch still boots the old version.
    if status.current is not None:
        _point(prefix, PREVIOUS_LINK, status.current.path)
    _point(prefix, CURRENT_LINK, slot)
    log.info("release.installed", version=manifest.version, previous=installed_version)
    return Slot(slot, manifest.version)


def _check_runs(slot: Path, version: str) -> None:
    executable = slot / "bin" / "chargerfw"
    done = subprocess.run([str(executable), "--version"], capture_output=True, text=True,
                          check=False, env=_slot_env())
    if done.returncode != 0 or version not in done.stdout.split():
        raise InstallFailed(f"{executable} --version gave exit {done.returncode}: "
                            f"{(done.stdout + done.stderr).strip()[-500:]}")


def rollback(prefix: Path) -> SlotStatus:
    """Swap ``current`` and ``previous``; the new status."""
    if not prefix.is_dir():
        raise ReleaseError(f"{prefix}: no such directory")
    with _prefix_lock(prefix):
        return _rollback_locked(prefix)


def _rollback_locked(prefix: Path) -> SlotStatus:
    status = slot_status(prefix)
    if status.previous is None:
        raise ReleaseError(f"no complete previous slot under {prefix} to roll back to")
    if status.current is None:
        _point(prefix, CURRENT_LINK, status.previous.path)
    else:
        old_current = status.current.path
        _point(prefix, CURRENT_LINK, status.previous.path)
        _point(prefix, PREVIOUS_LINK, old_current)
    log.info("release.rolled_back", version=status.previous.version,
             previous=status.current.version if status.current else None)
    return slot_status(prefix)
