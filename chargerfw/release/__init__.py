"""Firmware releases: the signed archive format (:mod:`.manifest`, :mod:`.archive`), the A/B
install with rollback (:mod:`.slots`) and the builder behind ``make release`` (:mod:`.build`).
"""

from chargerfw.release.archive import (
    VerifiedRelease,
    extract_release,
    verify_release,
    write_release,
)
from chargerfw.release.manifest import (
    BadManifest,
    BadSignature,
    HashMismatch,
    Manifest,
    MissingFile,
    ReleaseError,
    UnexpectedFile,
    UnsafePath,
    VersionTooOld,
    WrongPlatform,
    build_manifest,
    load_private_key,
    load_public_key,
)
from chargerfw.release.slots import (
    DEFAULT_PREFIX,
    DEFAULT_PUBLIC_KEY,
    InstallFailed,
    Slot,
    SlotStatus,
    install_release,
    rollback,
    slot_status,
)

__all__ = [
    "DEFAULT_PREFIX",
    "DEFAULT_PUBLIC_KEY",
    "BadManifest",
    "BadSignature",
    "HashMismatch",
    "InstallFailed",
    "Manifest",
    "MissingFile",
    "ReleaseError",
    "Slot",
    "SlotStatus",
    "UnexpectedFile",
    "UnsafePath",
    "VerifiedRelease",
    "VersionTooOld",
    "WrongPlatform",
    "build_manifest",
    "extract_release",
    "install_release",
    "load_private_key",
    "load_public_key",
    "rollback",
    "slot_status",
    "verify_release",
    "write_release",
]
