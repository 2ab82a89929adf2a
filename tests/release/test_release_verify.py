"""The release archive: a well-formed signed release verifies, and each way of being wrong is
refused with its own error naming what is wrong."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from chargerfw.release import (
    BadManifest,
    BadSignature,
    HashMismatch,
    MissingFile,
    ReleaseError,
    UnexpectedFile,
    UnsafePath,
    VersionTooOld,
    WrongPlatform,
    build_manifest,
    extract_release,
    verify_release,
    write_release,
)
from chargerfw.release.manifest import (
    parse_manifest,
    platform_tag,
    python_tag,
    sign_manifest,
    version_key,
)

KEY = Ed25519PrivateKey.generate()
OTHER_KEY = Ed25519PrivateKey.generate()
WHEEL_A = "wheels/chargerfw-2.0.0-py3-none-any.whl"
WHEEL_B = "wheels/click-8.1.7-py3-none-any.whl"
FILES = {WHEEL_A: b"wheel a" * 100, WHEEL_B: b"wheel b"}


def raw_tar(path: Path, members: list[tuple[str, bytes]],
            tweak: Callable[[tarfile.TarInfo], None] | None = None) -> Path:
    """A tar with exactly ``members`` (name, content), each optionally changed by ``tweak``."""
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            if tweak is not None:
                tweak(info)
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def signed_members(manifest_bytes: bytes, files: dict[str, bytes],
                   key: Ed25519PrivateKey = KEY) -> list[tuple[str, bytes]]:
    return [("manifest.json", manifest_bytes),
            ("manifest.sig", sign_manifest(manifest_bytes, key)), *files.items()]


def good_manifest(**overrides: str) -> bytes:
    fields = {"version": "2.0.0", "min_previous_version": "1.0.0"} | overrides
    return build_manifest(fields["version"], fields["min_previous_version"], FILES,
                          python=fields.get("python"), platform=fields.get("platform")
                          ).to_json_bytes()


def test_a_written_release_verifies_and_extracts(tmp_path: Path) -> None:
    manifest = build_manifest("2.0.0", "1.0.0", FILES)
    archive = write_release(tmp_path / "r.tar", manifest, FILES, KEY)
    verified = verify_release(archive, KEY.public_key(), installed_version="1.0.0")
    assert verified.manifest == parse_manifest(manifest.to_json_bytes())
    assert verified.manifest.python_tag == python_tag()
    assert verified.manifest.platform == platform_tag()
    dest = tmp_path / "out"
    dest.mkdir()
    extract_release(archive, dest, KEY.public_key(), installed_version="1.5")
    assert {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()} == {
        *FILES, "manifest.json", "manifest.sig"}
    assert (dest / WHEEL_A).read_bytes() == FILES[WHEEL_A]


def test_first_install_has_no_minimum(tmp_path: Path) -> None:
    archive = raw_tar(tmp_path / "r.tar", signed_members(good_manifest(), FILES))
    assert verify_release(archive, KEY.public_key()).manifest.version == "2.0.0"


def test_manifest_lists_every_file_hash() -> None:
    body = json.loads(good_manifest())
    assert body["format_version"] == 1
    assert body["files"] == {name: hashlib.sha256(data).hexdigest()
                             for name, data in FILES.items()}


def _wrong_byte(files: dict[str, bytes]) -> dict[str, bytes]:
    return files | {WHEEL_B: b"wheel c"}


REFUSALS: list[tuple[str, Callable[[], list[tuple[str, bytes]]], type[ReleaseError], str]] = [
    ("hash mismatch names the file",
     lambda: signed_members(good_manifest(), _wrong_byte(FILES)), HashMismatch, WHEEL_B),
    ("signed by another key",
     lambda: signed_members(good_manifest(), FILES, OTHER_KEY), BadSignature, "signature"),
    ("manifest changed after signing",
     lambda: [("manifest.json", good_manifest(version="2.0.1")),
              ("manifest.sig", sign_manifest(good_manifest(), KEY)), *FILES.items()],
     BadSignature, "signature"),
    ("installed version below the minimum",
     lambda: signed_members(good_manifest(min_previous_version="1.2"), FILES),
     VersionTooOld, "1.1.9"),
    ("other platform",
     lambda: signed_members(good_manifest(platform="windows_arm64"), FILES),
     WrongPlatform, "windows_arm64"),
    ("other python",
     lambda: signed_members(good_manifest(python="cp27"), FILES), WrongPlatform, "cp27"),
    ("listed wheel missing",
     lambda: signed_members(good_manifest(), {WHEEL_A: FILES[WHEEL_A]}), MissingFile, WHEEL_B),
    ("no signature",
     lambda: [("manifest.json", good_manifest()), *FILES.items()], MissingFile, "manifest.sig"),
    ("no manifest", lambda: list(FILES.items()), MissingFile, "manifest.json"),
    ("unlisted wheel",
     lambda: [*signed_members(good_manifest(), FILES),
              ("wheels/evil-1-py3-none-any.whl", b"x")], UnexpectedFile, "evil"),
    ("file twice",
     lambda: [*signed_members(good_manifest(), FILES), (WHEEL_B, b"wheel b")],
     UnexpectedFile, "twice"),
    ("path traversal",
     lambda: [*signed_members(good_manifest(), FILES), ("../../etc/cron.d/x", b"x")],
     UnsafePath, "../../etc/cron.d/x"),
    ("absolute path",
     lambda: [*signed_members(good_manifest(), FILES), ("/etc/passwd", b"x")],
     UnsafePath, "/etc/passwd"),
    ("file outside wheels/",
     lambda: [*signed_members(good_manifest(), FILES), ("setup.sh", b"x")],
     UnsafePath, "setup.sh"),
    ("manifest not JSON",
     lambda: [("manifest.json", b"{nope"), ("manifest.sig", sign_manifest(b"{nope", KEY)),
              *FILES.items()], BadManifest, "not JSON"),
]


@pytest.mark.parametrize(("members", "error", "named"),
                         [case[1:] for case in REFUSALS], ids=[case[0] for case in REFUSALS])
def test_each_bad_release_is_refused(tmp_path: Path,
                                     members: Callable[[], list[tuple[str, bytes]]],
                                     error: type[ReleaseError], named: str) -> None:
    archive = raw_tar(tmp_path / "r.tar", members())
    with pytest.raises(error) as raised:
        verify_release(archive, KEY.public_key(), installed_version="1.1.9")
    assert named in str(raised.value)
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(error):
        extract_release(archive, dest, KEY.public_key(), installed_version="1.1.9")


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.DIRTYPE,
                                  tarfile.CHRTYPE])
def test_links_devices_and_directories_are_refused(tmp_path: Path, kind: bytes) -> None:
    def as_kind(info: tarfile.TarInfo) -> None:
        if info.name == WHEEL_B:
            info.type = kind
            info.linkname = "/etc/shadow"
            info.size = 0

    archive = raw_tar(tmp_path / "r.tar", signed_members(good_manifest(), FILES), as_kind)
    with pytest.raises(UnsafePath, match="wheels/click"):
        verify_release(archive, KEY.public_key())


def test_a_file_that_is_no_tar_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "r.tar"
    junk.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(ReleaseError, match="not a tar"):
        verify_release(junk, KEY.public_key())
    with pytest.raises(ReleaseError, match="no such file"):
        verify_release(tmp_path / "absent.tar", KEY.public_key())


@pytest.mark.parametrize(("older", "newer"), [("1.9", "1.10"), ("0.1.0", "0.1.1"),
                                              ("1", "1.0.1"), ("0", "0.0.1")])
def test_versions_compare_as_numbers(older: str, newer: str) -> None:
    assert version_key(older) < version_key(newer)


@pytest.mark.parametrize("bad", ["1.0rc1", "", "v1", "1..2", "../1"])
def test_versions_other_than_dotted_integers_are_refused(bad: str) -> None:
    with pytest.raises(BadManifest, match="dot-separated"):
        build_manifest(bad, "0", FILES)
