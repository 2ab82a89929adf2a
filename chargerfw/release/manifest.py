"""A release's manifest: what it is (version, the oldest version it may replace, the Python and
platform its wheels are for) and the sha256 of every file it carries, signed with Ed25519.

Pure functions over bytes: reading the archive and installing it live in
:mod:`chargerfw.release.archive` and :mod:`chargerfw.release.slots`.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"
WHEELS_DIR = "wheels"

_VERSION = re.compile(r"^\d+(\.\d+)*$")
_FILE_NAME = re.compile(r"^wheels/[A-Za-z0-9_.+!-]+\.whl$")


class ReleaseError(Exception):
    """A release that may not be installed; the message says why."""


class BadManifest(ReleaseError):
    """The manifest is not a manifest of this format."""


class BadSignature(ReleaseError):
    """The manifest's signature does not verify with the public key."""


class HashMismatch(ReleaseError):
    """A file's content differs from its hash in the manifest."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name}: sha256 differs from the manifest")
        self.name = name


class MissingFile(ReleaseError):
    """A file the manifest lists (or the manifest or signature itself) is not in the archive."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name}: listed but not in the release")
        self.name = name


class UnexpectedFile(ReleaseError):
    """The archive holds a file the manifest does not list, or one twice."""

    def __init__(self, name: str, why: str = "not listed in the manifest") -> None:
        super().__init__(f"{name}: {why}")
        self.name = name


class UnsafePath(ReleaseError):
    """An archive member that is not a plain file at a plain relative path (``..``, absolute,
    link, device)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name}: not a plain file at a relative path inside the release")
        self.name = name


class VersionTooOld(ReleaseError):
    """The installed version is below the release's minimum previous version."""


class WrongPlatform(ReleaseError):
    """The release's wheels are for another Python or platform."""


def python_tag() -> str:
    """This interpreter's wheel tag, e.g. ``cp311``."""
    return f"cp{sys.version_info.major}{sys.version_info.minor}"


def platform_tag() -> str:
    """This machine's platform as a wheel tag, e.g. ``linux_aarch64`` on a Raspberry Pi."""
    return sysconfig.get_platform().replace("-", "_").replace(".", "_")


def version_key(version: str) -> tuple[int, ...]:
    """``1.2.10`` -> (1, 2, 10): releases are numbered with dot-separated integers only."""
    if not _VERSION.match(version):
        raise BadManifest(f"version {version!r} is not dot-separated integers")
    return tuple(int(part) for part in version.split("."))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Manifest:
    version: str
    min_previous_version: str
    python_tag: str
    platform: str
    # archive member name (wheels/<file>.whl) -> sha256 hex
    files: Mapping[str, str] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_json_bytes(self) -> bytes:
        body = {
            "format_version": self.format_version,
            "version": self.version,
            "min_previous_version": self.min_previous_version,
            "python_tag": self.python_tag,
            "platform": self.platform,
            "files": dict(sorted(self.files.items())),
        }
        return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()


def build_manifest(version: str, min_previous_version: str, files: Mapping[str, bytes], *,
                   python: str | None = None, platform: str | None = None) -> Manifest:
    """The manifest of a release carrying ``files`` (archive name -> content); Python and
    platform default to this machine's."""
    version_key(version)
    version_key(min_previous_version)
    for name in files:
        check_file_name(name)
    return Manifest(version=version, min_previous_version=min_previous_version,
                    python_tag=python or python_tag(), platform=platform or platform_tag(),
                    files={name: sha256_hex(data) for name, data in files.items()})


def check_file_name(name: str) -> None:
    if not _FILE_NAME.match(name) or ".." in name:
        raise UnsafePath(name)


def parse_manifest(data: bytes) -> Manifest:
    try:
        body: Any = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadManifest(f"{MANIFEST_NAME} is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadManifest(f"{MANIFEST_NAME} is not a JSON object")
    if body.get("format_version") != FORMAT_VERSION:
        raise BadManifest(f"format_version {body.get('format_version')!r} is not "
                          f"{FORMAT_VERSION}")
    strings = ("version", "min_previous_version", "python_tag", "platform")
    for key in strings:
        if not isinstance(body.get(key), str):
            raise BadManifest(f"{key} missing or not a string")
    files = body.get("files")
    if not isinstance(files, dict) or not all(
            isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) for v in files.values()):
        raise BadManifest("files must map each file to its sha256 in hex")
    for name in files:
        check_file_name(name)
    version_key(body["version"])
    version_key(body["min_previous_version"])
    return Manifest(version=body["version"], min_previous_version=body["min_previous_version"],
                    python_tag=body["python_tag"], platform=body["platform"], files=files)


def sign_manifest(manifest_bytes: bytes, private_key: Ed25519PrivateKey) -> bytes:
    return private_key.sign(manifest_bytes)


def check_signature(manifest_bytes: bytes, signature: bytes,
                    public_key: Ed25519PublicKey) -> None:
    try:
        public_key.verify(signature, manifest_bytes)
    except InvalidSignature:
        raise BadSignature("the manifest's signature does not verify with the public key") \
            from None


def check_compatible(manifest: Manifest, *, installed_version: str | None,
                     python: str | None = None, platform: str | None = None) -> None:
    """Refuse a release for another Python/platform or one that may not replace the installed
    version (None: nothing installed yet)."""
    want_python, want_platform = python or python_tag(), platform or platform_tag()
    if (manifest.python_tag, manifest.platform) != (want_python, want_platform):
        raise WrongPlatform(f"release is for {manifest.python_tag}/{manifest.platform}, "
                            f"this station is {want_python}/{want_platform}")
    if installed_version is not None and \
            version_key(installed_version) < version_key(manifest.min_previous_version):
        raise VersionTooOld(f"installed version {installed_version} is below the release's "
                            f"minimum previous version {manifest.min_previous_version}")


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise ReleaseError(f"public key is not PEM: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ReleaseError("public key is not an Ed25519 key")
    return key


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ReleaseError(f"private key is not an unencrypted PEM key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ReleaseError("private key is not an Ed25519 key")
    return key


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_key_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo)
