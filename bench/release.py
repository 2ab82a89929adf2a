"""Release build and A/B install times: building a signed release of the current tree (the
chargerfw wheel only, as the tests do; dependency wheels would add pip's download and build
time), verifying it, installing it into a new slot of a temporary prefix (venv with pip,
``pip install --no-index``, the slot's ``chargerfw --version``, the link switch) and rolling
back, beside the baseline ``python -m venv`` alone (the bulk of an install) in the same rounds.
Prints p50 / p99 (nearest rank) with the sample count n; not a pass/fail test.

Options: --rounds (5); CHARGERFW_BENCH_QUICK=1 for 2 rounds.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from station_common import nearest_rank

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "release"))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from release_builds import build_test_release  # noqa: E402

import chargerfw  # noqa: E402
from chargerfw.logs import setup_logging  # noqa: E402
from chargerfw.release import install_release, rollback, verify_release  # noqa: E402

BASELINE = "baseline: python -m venv (with pip)"
BUILD = "build release (chargerfw wheel)"
VERIFY = "verify release"
INSTALL = "install into a new slot + switch"
ROLLBACK = "rollback"


def line(name: str, values: list[float]) -> None:
    ordered = sorted(values)
    print(f"  {name:<36} p50 {nearest_rank(ordered, 50):7.3f} s   "
          f"p99 {nearest_rank(ordered, 99):7.3f} s   n={len(ordered)}")


def one_round(work: Path, key: Ed25519PrivateKey, versions: list[str],
              figures: dict[str, list[float]]) -> int:
    """One of each step into ``figures``; the size of the last release built."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(work / "venv")], check=True)
    figures[BASELINE].append(time.perf_counter() - start)
    archives = []
    for version in versions:
        start = time.perf_counter()
        archives.append(build_test_release(work / version, version, key))
        figures[BUILD].append(time.perf_counter() - start)
    start = time.perf_counter()
    verify_release(archives[-1], key.public_key())
    figures[VERIFY].append(time.perf_counter() - start)
    prefix = work / "opt"
    for archive in archives:
        start = time.perf_counter()
        install_release(archive, prefix, key.public_key(), with_dependencies=False)
        figures[INSTALL].append(time.perf_counter() - start)
    start = time.perf_counter()
    rollback(prefix)
    figures[ROLLBACK].append(time.perf_counter() - start)
    return archives[-1].stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rounds = 2 if os.environ.get("CHARGERFW_BENCH_QUICK") else args.rounds
    setup_logging("WARNING")
    key = Ed25519PrivateKey.generate()
    versions = [chargerfw.__version__, f"{chargerfw.__version__}.1"]
    figures: dict[str, list[float]] = {name: [] for name in
                                       (BASELINE, BUILD, VERIFY, INSTALL, ROLLBACK)}
    size = 0
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            size = one_round(Path(tmp), key, versions, figures)
    print(f"release of chargerfw {versions[-1]}: {size / 1024:.0f} KiB (chargerfw wheel only)")
    for name, values in figures.items():
        line(name, values)


if __name__ == "__main__":
    main()
