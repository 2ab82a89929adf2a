"""How long a remote firmware update takes, end to end on this machine, with the bundled backend.

Each round installs the tree's release into a fresh prefix and runs the station as systemd runs
it (the boot launcher over real release slots, started again whenever it ends), then measures:

- baseline: a power cut (SIGKILL) of the running station until its next BootNotification (the
  cost of one restart, measured in the same run so the figures below survive a noisy machine);
- update: `chargerfw csms cp firmware update` of a published release until the
  BootNotification of the new version (download from the backend's file server, verify,
  install into a slot, restart, health check);
- rollback: the same for a release that installs but cannot start the station, until the
  launcher has rolled back and the previous version's BootNotification arrives.

The slots carry the chargerfw wheel only; the dependencies come from this environment
(tests/release/update_service.py). Prints p50/p99/max over the rounds."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from station_common import nearest_rank

ROOT = Path(__file__).resolve().parent.parent
for helpers in ("tests", "tests/release"):
    sys.path.insert(0, str(ROOT / helpers))

from click.testing import CliRunner  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from csms_doubles import add_test_charger, csms_running  # noqa: E402
from release_builds import build_test_release, source_with_version  # noqa: E402
from update_service import prepare, wait_for  # noqa: E402

import chargerfw  # noqa: E402
from chargerfw.cli import main as cli_main  # noqa: E402
from chargerfw.logs import setup_logging  # noqa: E402
from chargerfw.release.build import build_release  # noqa: E402

OLD = chargerfw.__version__
NEW = f"{OLD}.1"
BROKEN = f"{OLD}.2"
KEY = Ed25519PrivateKey.generate()


def csms_cli(*args: str) -> None:
    result = CliRunner().invoke(cli_main, ["csms", *args])
    if result.exit_code != 0:
        raise SystemExit(f"chargerfw csms {' '.join(args)}: {result.output}")


def build(work: Path) -> dict[str, Path]:
    releases = {v: build_test_release(work / f"build-{v}", v, KEY) for v in (OLD, NEW)}
    source = source_with_version(work / "broken" / "src", BROKEN)
    runtime = source / "chargerfw" / "runtime" / "station.py"
    runtime.write_text(runtime.read_text() + '\nraise RuntimeError("broken release")\n')
    releases[BROKEN] = build_release(source, work / "broken" / "dist", KEY,
                                     min_previous_version="0", with_dependencies=False)
    return releases


async def one_round(work: Path, db: str, releases: dict[str, Path], index: int,
                    figures: dict[str, list[float]]) -> None:
    async with csms_running(db, data_dir=str(work / "files"),
                            operator_command_poll_s=0.05) as csms:
        if csms.store.get_charge_point("CP1") is None:
            add_test_charger(csms.store, "CP1", None)
        station = work / f"station-{index}"
        station.mkdir()
        service = prepare(station, csms.ocpp_url, releases[OLD], KEY.public_key(),
                          boot_attempts=2)

        def boot() -> tuple[object, object]:
            point = csms.store.get_charge_point("CP1")
            assert point is not None
            return point["last_boot"], point["firmware_version"]

        async def timed(start: tuple[object, object], version: str) -> float:
            began = time.perf_counter()
            await wait_for(lambda: boot()[0] != start[0] and boot()[1] == version,
                           f"a BootNotification of {version}", service, timeout=300)
            return time.perf_counter() - began

        async with service.running():
            await wait_for(lambda: boot()[1] == OLD and boot()[0] is not None,
                           "the first boot", service, timeout=120)
            await asyncio.sleep(1.0)  # settled: connected and idle
            before = boot()
            service.power_cut()
            figures["baseline: power cut -> Boot (same version)"].append(
                await timed(before, OLD))

            await asyncio.sleep(1.0)
            before = boot()
            began = time.perf_counter()
            await asyncio.to_thread(csms_cli, "cp", "firmware", "update", "CP1", NEW,
                                    "--db", db)
            await timed(before, NEW)
            figures["UpdateFirmware -> Boot of the new version"].append(
                time.perf_counter() - began)

            await asyncio.sleep(1.0)
            before = boot()
            began = time.perf_counter()
            await asyncio.to_thread(csms_cli, "cp", "firmware", "update", "CP1", BROKEN,
                                    "--db", db)
            await timed(before, NEW)
            figures["UpdateFirmware (release that cannot start) -> Boot of the previous"
                    ].append(time.perf_counter() - began)


async def run(rounds: int) -> None:
    setup_logging("WARNING")
    with tempfile.TemporaryDirectory(prefix="bench-fw-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        releases = build(work)
        print(f"built 3 releases (chargerfw wheel only) in {time.perf_counter() - started:.1f} s")
        db = str(work / "csms.sqlite3")
        for version in (NEW, BROKEN):
            await asyncio.to_thread(csms_cli, "firmware", "publish", str(releases[version]),
                                    "--db", db, "--data-dir", str(work / "files"))
        figures: dict[str, list[float]] = {
            "baseline: power cut -> Boot (same version)": [],
            "UpdateFirmware -> Boot of the new version": [],
            "UpdateFirmware (release that cannot start) -> Boot of the previous": []}
        for index in range(rounds):
            await one_round(work, db, releases, index, figures)
        print(f"{rounds} rounds; seconds:")
        for name, samples in figures.items():
            samples.sort()
            print(f"  {name:<70} p50 {nearest_rank(samples, 50):6.2f}  "
                  f"p99 {nearest_rank(samples, 99):6.2f}  max {samples[-1]:6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5,
                        help="updates of each kind (each round takes about a minute)")
    asyncio.run(run(parser.parse_args().rounds))


if __name__ == "__main__":
    main()
