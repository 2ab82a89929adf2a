"""Real releases of the current tree for the install tests: the source is copied (so the build
leaves the tree alone and a second copy can carry a higher version) and built into a release
carrying the chargerfw wheel only (installed with pip --no-deps: building every dependency's
wheel would need the network and minutes)."""

from __future__ import annotations

import shutil
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import chargerfw
from chargerfw.release.build import build_release

ROOT = Path(__file__).resolve().parents[2]
SOURCE_PARTS = ("chargerfw", "hw", "setup.cfg", "pyproject.toml", "README.md")


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


def build_test_release(workdir: Path, version: str, key: Ed25519PrivateKey,
                       min_previous_version: str = "0") -> Path:
    source = source_with_version(workdir / "src", version)
    return build_release(source, workdir / "dist", key,
                         min_previous_version=min_previous_version, with_dependencies=False)
