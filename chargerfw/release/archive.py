"""The release archive: a tar holding ``manifest.json``, its detached Ed25519 signature
``manifest.sig`` and ``wheels/*.whl``. Reading refuses anything else (links, devices, paths
outside the archive, unlisted or duplicate members) before a byte is trusted.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from chargerfw.release.manifest import (
    MANIFEST_NAME,
    SIGNATURE_NAME,
    HashMismatch,
    Manifest,
    MissingFile,
    ReleaseError,
    UnexpectedFile,
    UnsafePath,
    check_compatible,
    check_file_name,
    check_signature,
    parse_manifest,
    sign_manifest,
)

_CHUNK = 1 << 20
# A manifest or signature larger than this is not one.
_SMALL_LIMIT = 1 << 20


@dataclass(frozen=True)
class VerifiedRelease:
    manifest: Manifest
    manifest_bytes: bytes
    signature: bytes


def write_release(out: Path, manifest: Manifest, files: Mapping[str, bytes],
                  private_key: Ed25519PrivateKey) -> Path:
    """Write the signed archive ``out`` carrying ``files`` as the manifest lists them."""
    if set(files) != set(manifest.files):
        raise ReleaseError("the files given differ from the manifest's")
    manifest_bytes = manifest.to_json_bytes()
    members = {MANIFEST_NAME: manifest_bytes,
               SIGNATURE_NAME: sign_manifest(manifest_bytes, private_key),
               **dict(sorted(files.items()))}
    partial = out.with_name(out.name + ".partial")
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    os.replace(partial, out)
    return out


def _plain_members(tar: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    members: dict[str, tarfile.TarInfo] = {}
    for info in tar.getmembers():
        name = info.name
        parts = Path(name).parts
        if not info.isfile() or name.startswith("/") or ".." in parts or not parts:
            raise UnsafePath(name)
        if name in members:
            raise UnexpectedFile(name, "appears twice in the archive")
        members[name] = info
    return members


def _read_small(tar: tarfile.TarFile, members: Mapping[str, tarfile.TarInfo], name: str) -> bytes:
    info = members.get(name)
    if info is None:
        raise MissingFile(name)
    if info.size > _SMALL_LIMIT:
        raise UnexpectedFile(name, f"larger than {_SMALL_LIMIT} bytes")
    stream = tar.extractfile(info)
    assert stream is not None  # a regular file, checked above
    return stream.read()


def _open_checked(tar: tarfile.TarFile, public_key: Ed25519PublicKey,
                  installed_version: str | None, python: str | None, platform: str | None
                  ) -> tuple[VerifiedRelease, dict[str, tarfile.TarInfo]]:
    members = _plain_members(tar)
    manifest_bytes = _read_small(tar, members, MANIFEST_NAME)
    signature = _read_small(tar, members, SIGNATURE_NAME)
    check_signature(manifest_bytes, signature, public_key)
    manifest = parse_manifest(manifest_bytes)
    check_compatible(manifest, installed_version=installed_version, python=python,
                     platform=platform)
    for name in members:
        if name not in (MANIFEST_NAME, SIGNATURE_NAME):
            check_file_name(name)
            if name not in manifest.files:
                raise UnexpectedFile(name)
    for name in manifest.files:
        if name not in members:
            raise MissingFile(name)
    return VerifiedRelease(manifest, manifest_bytes, signature), members


def _copy_hashed(tar: tarfile.TarFile, info: tarfile.TarInfo, expected: str,
                 sink: io.BufferedWriter | None) -> None:
    stream = tar.extractfile(info)
    assert stream is not None
    digest = hashlib.sha256()
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
        if sink is not None:
            sink.write(chunk)
    if digest.hexdigest() != expected:
        raise HashMismatch(info.name)


def verify_release(archive: Path, public_key: Ed25519PublicKey, *,
                   installed_version: str | None = None, python: str | None = None,
                   platform: str | None = None) -> VerifiedRelease:
    """Check ``archive`` completely (structure, signature, compatibility with this station
    and ``installed_version``, every file's hash); its manifest if it may be installed."""
    with _open_tar(archive) as tar:
        verified, members = _open_checked(tar, public_key, installed_version, python, platform)
        for name, expected in verified.manifest.files.items():
            _copy_hashed(tar, members[name], expected, None)
    return verified


def extract_release(archive: Path, dest: Path, public_key: Ed25519PublicKey, *,
                    installed_version: str | None = None) -> VerifiedRelease:
    """Verify ``archive`` as :func:`verify_release` does while writing its files under
    ``dest`` (which must exist); on any error ``dest`` may hold part of them."""
    with _open_tar(archive) as tar:
        verified, members = _open_checked(tar, public_key, installed_version, None, None)
        for name, expected in verified.manifest.files.items():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as sink:
                _copy_hashed(tar, members[name], expected, sink)
        (dest / SIGNATURE_NAME).write_bytes(verified.signature)
        (dest / MANIFEST_NAME).write_bytes(verified.manifest_bytes)
    return verified


def _open_tar(archive: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(archive, "r:*")
    except FileNotFoundError:
        raise ReleaseError(f"{archive}: no such file") from None
    except tarfile.TarError as exc:
        raise ReleaseError(f"{archive}: not a tar archive: {exc}") from None
