"""A/B install of real releases built from the current tree into a temporary prefix: install,
switch, roll back, refuse, and survive SIGKILL at any moment with a bootable ``current``."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from release_builds import RELEASE_KEY, build_test_release

import chargerfw
from chargerfw.release import (
    BadSignature,
    InstallFailed,
    ReleaseError,
    VersionTooOld,
    build_manifest,
    install_release,
    rollback,
    slot_status,
    write_release,
)
from chargerfw.release.manifest import parse_manifest, public_key_pem

pytestmark = pytest.mark.timeout(120)

OLD = chargerfw.__version__
NEW = f"{OLD}.1"
KEY = RELEASE_KEY
PUBLIC = KEY.public_key()


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {version: build_test_release(tmp_path_factory.mktemp(f"build-{version}"), version, KEY)
            for version in (OLD, NEW)}


def install(archive: Path, prefix: Path) -> str:
    return install_release(archive, prefix, PUBLIC, with_dependencies=False).version


def reported_version(prefix: Path) -> str:
    done = subprocess.run([str(prefix / "current" / "bin" / "chargerfw"), "--version"],
                          capture_output=True, text=True, check=True,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    return done.stdout.split()[-1]


def firmware_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chargerfw", "firmware", *args],
                          capture_output=True, text=True)


def slot_dirs(prefix: Path) -> set[str]:
    return {p.name for p in (prefix / "releases").iterdir()}


def test_install_switches_keeps_previous_and_rolls_back(releases: dict[str, Path],
                                                        tmp_path: Path) -> None:
    prefix = tmp_path / "opt"
    assert install(releases[OLD], prefix) == OLD
    assert reported_version(prefix) == OLD
    assert slot_status(prefix).previous is None
    assert install(releases[NEW], prefix) == NEW
    assert reported_version(prefix) == NEW
    status = slot_status(prefix)
    assert (status.current and status.current.version, status.previous and
            status.previous.version) == (NEW, OLD)
    assert os.readlink(prefix / "current") == f"releases/{NEW}"
    rolled = firmware_cli("rollback", "--prefix", str(prefix))
    assert rolled.returncode == 0, rolled.stderr
    assert f"current is now {OLD}" in rolled.stdout
    assert reported_version(prefix) == OLD
    assert os.readlink(prefix / "previous") == f"releases/{NEW}"
    assert slot_dirs(prefix) == {OLD, NEW}
    # The technician's command shows the same.
    shown = firmware_cli("status", "--prefix", str(prefix), "--json")
    body = json.loads(shown.stdout)
    assert (body["current"]["version"], body["previous"]["version"]) == (OLD, NEW)
    # Rolling back again returns to the newer release.
    status = rollback(prefix)
    assert (status.current and status.current.version, status.previous and
            status.previous.version) == (NEW, OLD)
    assert reported_version(prefix) == NEW


def test_cli_install_refuses_a_release_signed_by_another_key(releases: dict[str, Path],
                                                             tmp_path: Path) -> None:
    prefix = tmp_path / "opt"
    install(releases[OLD], prefix)
    other = tmp_path / "other.pub"
    other.write_bytes(public_key_pem(Ed25519PrivateKey.generate().public_key()))
    done = subprocess.run([sys.executable, "-m", "chargerfw", "firmware", "install",
                           str(releases[NEW]), "--prefix", str(prefix), "--public-key",
                           str(other)], capture_output=True, text=True)
    assert done.returncode == 1
    assert "signature" in done.stderr
    assert slot_dirs(prefix) == {OLD}
    assert reported_version(prefix) == OLD
    with pytest.raises(BadSignature):
        install_release(releases[NEW], prefix, Ed25519PrivateKey.generate().public_key())


def _resigned(release: Path, out: Path, min_previous: str = "0",
              replace_wheel: bytes | None = None) -> Path:
    """``release``'s wheels in a new release with another minimum or a broken wheel."""
    with tarfile.open(release) as tar:
        read = {m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
                for m in tar.getmembers()}
    files = {name: replace_wheel if replace_wheel is not None else data
             for name, data in read.items() if name.startswith("wheels/")}
    version = parse_manifest(read["manifest.json"]).version
    return write_release(out, build_manifest(version, min_previous, files), files, KEY)


def test_version_below_the_minimum_is_refused(releases: dict[str, Path],
                                              tmp_path: Path) -> None:
    prefix = tmp_path / "opt"
    install(releases[OLD], prefix)
    needs_newer = _resigned(releases[NEW], tmp_path / "r.tar", min_previous=f"{OLD}.0.5")
    with pytest.raises(VersionTooOld, match=OLD):
        install(needs_newer, prefix)
    assert slot_dirs(prefix) == {OLD}


def test_a_failed_install_removes_its_slot_and_leaves_current(releases: dict[str, Path],
                                                              tmp_path: Path) -> None:
    prefix = tmp_path / "opt"
    install(releases[OLD], prefix)
    broken = _resigned(releases[NEW], tmp_path / "r.tar", replace_wheel=b"not a zip")
    with pytest.raises(InstallFailed, match="installing the wheels"):
        install(broken, prefix)
    assert slot_dirs(prefix) == {OLD}
    assert reported_version(prefix) == OLD
    with pytest.raises(ReleaseError, match="already current"):
        install(releases[OLD], prefix)


INSTALLER = """\
import sys
from pathlib import Path
from chargerfw.release import install_release, load_public_key
install_release(Path(sys.argv[1]), Path(sys.argv[2]), load_public_key(Path(sys.argv[3]).read_bytes()),
                with_dependencies=False)
"""


@pytest.mark.parametrize("run", range(2))
def test_sigkill_at_any_moment_leaves_a_bootable_current(releases: dict[str, Path],
                                                         tmp_path: Path, run: int) -> None:
    prefix = tmp_path / "opt"
    install(releases[OLD], prefix)
    public = tmp_path / "key.pub"
    public.write_bytes(public_key_pem(PUBLIC))
    seed = random.randrange(1 << 30)
    delay = random.Random(seed).uniform(0.0, 6.0)
    installer = subprocess.Popen([sys.executable, "-c", INSTALLER, str(releases[NEW]),
                                  str(prefix), str(public)], start_new_session=True)
    time.sleep(delay)
    os.killpg(installer.pid, signal.SIGKILL)  # the installer and its venv/pip children
    installer.wait()
    where = f"killed after {delay:.2f} s (seed {seed})"
    status = slot_status(prefix)
    assert status.current is not None, where
    assert status.current.version in (OLD, NEW), where
    assert reported_version(prefix) == status.current.version, where
    # The next install cleans up whatever the cut left and completes.
    target = releases[NEW] if status.current.version == OLD else releases[OLD]
    install(target, prefix)
    assert slot_dirs(prefix) == {OLD, NEW}, where


def test_the_builder_makes_a_marked_test_key_when_none_is_given(tmp_path: Path) -> None:
    from release_builds import source_with_version

    from chargerfw.release import load_private_key, verify_release

    source = source_with_version(tmp_path / "src", NEW)
    key = tmp_path / "keys" / "test.pem"
    done = subprocess.run([sys.executable, "-m", "chargerfw.release.build", "--source",
                           str(source), "--out", str(tmp_path / "dist"), "--key", str(key),
                           "--no-deps", "--min-previous-version", OLD],
                          capture_output=True, text=True, check=True)
    assert "NEW TEST KEY" in done.stderr
    archive = Path(done.stdout.strip())
    assert archive == tmp_path / "dist" / f"chargerfw-{NEW}-release.tar"
    manifest = verify_release(archive, load_private_key(key.read_bytes()).public_key(),
                              installed_version=OLD).manifest
    assert (manifest.version, manifest.min_previous_version) == (NEW, OLD)
    assert list(manifest.files) == [f"wheels/chargerfw-{NEW}-py3-none-any.whl"]
    # A key that exists is used, not replaced.
    again = subprocess.run([sys.executable, "-m", "chargerfw.release.build", "--source",
                            str(source), "--out", str(tmp_path / "dist2"), "--key", str(key),
                            "--no-deps"], capture_output=True, text=True, check=True)
    assert "TEST KEY" not in again.stderr
    verify_release(Path(again.stdout.strip()), load_private_key(key.read_bytes()).public_key())


def test_cli_status_and_rollback_of_an_empty_prefix(tmp_path: Path) -> None:
    shown = firmware_cli("status", "--prefix", str(tmp_path))
    assert shown.returncode == 0
    assert shown.stdout.split() == ["current", "none", "previous", "none"]
    refused = firmware_cli("rollback", "--prefix", str(tmp_path))
    assert refused.returncode == 1
    assert "no complete previous slot" in refused.stderr
    missing_key = firmware_cli("install", str(tmp_path / "r.tar"), "--prefix", str(tmp_path),
                               "--public-key", str(tmp_path / "absent.pub"))
    assert missing_key.returncode == 2
    assert "absent.pub" in missing_key.stderr


def test_one_install_at_a_time(releases: dict[str, Path], tmp_path: Path) -> None:
    import fcntl

    prefix = tmp_path / "opt"
    prefix.mkdir()
    with open(prefix / ".lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(ReleaseError, match="another install"):
            install(releases[OLD], prefix)
    assert not (prefix / "releases" / OLD).exists()
    assert install(releases[OLD], prefix) == OLD


def test_what_a_cut_install_leaves_is_ignored_then_cleaned(releases: dict[str, Path],
                                                           tmp_path: Path) -> None:
    prefix = tmp_path / "opt"
    install(releases[OLD], prefix)
    # A slot cut before its marker, and a temporary link cut before its rename.
    half = prefix / "releases" / NEW
    (half / "bin").mkdir(parents=True)
    (half / "manifest.json").write_text("{}")
    (prefix / ".current.4242.tmp").symlink_to(f"releases/{NEW}")
    status = slot_status(prefix)
    assert status.current is not None and status.current.version == OLD
    assert status.previous is None
    with pytest.raises(ReleaseError, match="no complete previous slot"):
        rollback(prefix)
    assert install(releases[NEW], prefix) == NEW
    assert reported_version(prefix) == NEW
    assert not (prefix / ".current.4242.tmp").is_symlink()
    assert slot_dirs(prefix) == {OLD, NEW}
