"""`chargerfw firmware status|install FILE|rollback`: the A/B release slots for a technician on
site, with the same checks an update from the backend gets."""

from __future__ import annotations

from pathlib import Path

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from chargerfw.cli.common import EXIT_FAILED, EXIT_USAGE, echo_json, fail, json_option
from chargerfw.release import (
    DEFAULT_PREFIX,
    DEFAULT_PUBLIC_KEY,
    ReleaseError,
    Slot,
    install_release,
    load_public_key,
    rollback,
    slot_status,
)

prefix_option = click.option(
    "--prefix", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_PREFIX,
    show_default=True, help="where the release slots live")


def _slot_dict(slot: Slot | None) -> dict[str, str] | None:
    return None if slot is None else {"version": slot.version, "slot": str(slot.path)}


def _public_key(path: Path) -> Ed25519PublicKey:
    try:
        return load_public_key(path.read_bytes())
    except OSError as exc:
        fail(f"public key {path}: {exc.strerror}", EXIT_USAGE)
    except ReleaseError as exc:
        fail(f"public key {path}: {exc}", EXIT_USAGE)


@click.group("firmware")
def firmware_group() -> None:
    """The installed releases (A/B slots): status, install a release file, roll back."""


@firmware_group.command("status")
@prefix_option
@json_option
def status_command(prefix: Path, as_json: bool) -> None:
    """The current and previous release and their slots."""
    status = slot_status(prefix)
    if as_json:
        echo_json({"current": _slot_dict(status.current),
                   "previous": _slot_dict(status.previous)})
        return
    for label, slot in (("current", status.current), ("previous", status.previous)):
        click.echo(f"{label:<9} " + (f"{slot.version:<12} {slot.path}" if slot else "none"))


@firmware_group.command("install")
@click.argument("release_file", type=click.Path(dir_okay=False, path_type=Path))
@prefix_option
@click.option("--public-key", type=click.Path(dir_okay=False, path_type=Path),
              default=DEFAULT_PUBLIC_KEY, show_default=True,
              help="the Ed25519 key (PEM) releases must be signed with")
def install_command(release_file: Path, prefix: Path, public_key: Path) -> None:
    """Verify RELEASE_FILE (signature, hashes, platform, minimum version), install it into a
    new slot and make it current; the running service picks it up when restarted."""
    key = _public_key(public_key)
    try:
        slot = install_release(release_file, prefix, key)
    except ReleaseError as exc:
        fail(f"release refused, nothing changed: {exc}", EXIT_FAILED)
    click.echo(f"installed {slot.version} into {slot.path}; restart the service to run it")


@firmware_group.command("rollback")
@prefix_option
def rollback_command(prefix: Path) -> None:
    """Make the previous release current again (and the current one previous)."""
    try:
        status = rollback(prefix)
    except ReleaseError as exc:
        fail(str(exc), EXIT_FAILED)
    assert status.current is not None
    click.echo(f"current is now {status.current.version}; restart the service to run it")
