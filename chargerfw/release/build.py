"""Build a signed release from a source tree: ``python -m chargerfw.release.build`` (what
``make release`` runs). The wheels are for this machine's Python and platform: build on an
aarch64 machine for a Raspberry Pi.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from chargerfw.release.archive import write_release
from chargerfw.release.manifest import (
    WHEELS_DIR,
    ReleaseError,
    build_manifest,
    load_private_key,
    private_key_pem,
    public_key_pem,
)


def release_file_name(version: str) -> str:
    return f"chargerfw-{version}-release.tar"


def wheel_version(wheel: Path) -> str:
    """The version part of a wheel's file name (name-version-python-abi-platform.whl)."""
    return wheel.name.split("-")[1]


def build_wheels(source: Path, into: Path, *, with_dependencies: bool) -> Path:
    """The chargerfw wheel built from ``source`` into ``into`` (and, unless
    ``with_dependencies`` is False, the wheels of all its dependencies beside it)."""
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir",
                    str(into), str(source)], check=True, capture_output=True, cwd=source)
    (built,) = into.glob("chargerfw-*.whl")
    if with_dependencies:
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet",
                        "--disable-pip-version-check", "--wheel-dir", str(into), str(built)],
                       check=True)
    return built


def make_test_key(path: Path) -> Ed25519PrivateKey:
    """A new signing key written to ``path`` (its public half beside it as ``.pub``)."""
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(private_key_pem(key))
    path.chmod(0o600)
    path.with_suffix(".pub").write_bytes(public_key_pem(key.public_key()))
    return key


def build_release(source: Path, out_dir: Path, private_key: Ed25519PrivateKey, *,
                  min_previous_version: str, with_dependencies: bool = True) -> Path:
    """Build, sign and write the release of ``source``; the archive's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wheels_dir = Path(tmp)
        built = build_wheels(source, wheels_dir, with_dependencies=with_dependencies)
        version = wheel_version(built)
        files = {f"{WHEELS_DIR}/{wheel.name}": wheel.read_bytes()
                 for wheel in sorted(wheels_dir.glob("*.whl"))}
        manifest = build_manifest(version, min_previous_version, files)
        return write_release(out_dir / release_file_name(version), manifest, files,
                             private_key)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chargerfw.release.build",
                                     description=__doc__)
    parser.add_argument("--source", type=Path, default=Path.cwd())
    parser.add_argument("--out", type=Path, default=Path("dist"))
    parser.add_argument("--key", type=Path, required=True,
                        help="Ed25519 private key (PEM); a test key is made if it is missing")
    parser.add_argument("--min-previous-version", default="0")
    parser.add_argument("--no-deps", action="store_true",
                        help="carry the chargerfw wheel only (for tests)")
    args = parser.parse_args(argv)
    if args.key.exists():
        key = load_private_key(args.key.read_bytes())
    else:
        key = make_test_key(args.key)
        print(f"*** {args.key} did not exist: made a NEW TEST KEY there (public half "
              f"{args.key.with_suffix('.pub')}). Stations trust only their installed key; "
              f"never ship a release signed with a test key.", file=sys.stderr)
    try:
        out = build_release(args.source.resolve(), args.out, key,
                            min_previous_version=args.min_previous_version,
                            with_dependencies=not args.no_deps)
    except subprocess.CalledProcessError as exc:
        print(f"building the wheels failed: {exc}\n{(exc.stderr or b'').decode()[-2000:]}",
              file=sys.stderr)
        return 1
    except ReleaseError as exc:
        print(f"release: {exc}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
