"""A new release on trial, as files in the prefix the boot launcher (``chargerfw-boot``, a POSIX
sh script) can read without any Python of the new release working::

    <prefix>/trial           KEY=value lines: NEW_VERSION, PREVIOUS_VERSION, DEADLINE (Unix s),
                             MAX_BOOTS, STORE_BACKUP; written (fsynced) before the switch
    <prefix>/trial-boots     how many times the launcher started the new release
    <prefix>/trial-outcome   RESULT=failed, VERSION, REASON: the trial failed and ``current``
                             points at the previous release again
    <prefix>/bin/chargerfw-boot   the launcher systemd runs

The new release removes ``trial`` once healthy (its self-test passed and the backend accepted
its BootNotification); the previous release, finding ``trial-outcome`` at start-up, reports the
failure and removes all three.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from chargerfw.durable import write_atomically

TRIAL_NAME = "trial"
BOOTS_NAME = "trial-boots"
OUTCOME_NAME = "trial-outcome"
BOOT_SCRIPT = "chargerfw-boot"


@dataclass(frozen=True)
class Trial:
    new_version: str
    previous_version: str
    deadline: float  # Unix time: healthy by then, or rolled back
    max_boots: int
    store_backup: Path | None = None  # the store as it was before the switch


@dataclass(frozen=True)
class Outcome:
    version: str  # the release that failed its trial
    reason: str


def _one_line(value: str) -> str:
    return " ".join(value.split())


def _read_pairs(path: Path) -> dict[str, str] | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    pairs = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            pairs[key.strip()] = value
    return pairs


def write_trial(prefix: Path, trial: Trial) -> None:
    """Start a trial: the record on disk (fsynced) and no boots counted yet."""
    (prefix / BOOTS_NAME).unlink(missing_ok=True)
    (prefix / OUTCOME_NAME).unlink(missing_ok=True)
    write_atomically(prefix / TRIAL_NAME, (
        f"NEW_VERSION={trial.new_version}\n"
        f"PREVIOUS_VERSION={trial.previous_version}\n"
        f"DEADLINE={int(trial.deadline)}\n"
        f"MAX_BOOTS={trial.max_boots}\n"
        f"STORE_BACKUP={trial.store_backup or ''}\n").encode())


def read_trial(prefix: Path) -> Trial | None:
    pairs = _read_pairs(prefix / TRIAL_NAME)
    if pairs is None:
        return None
    try:
        return Trial(new_version=pairs["NEW_VERSION"],
                     previous_version=pairs.get("PREVIOUS_VERSION", ""),
                     deadline=float(pairs["DEADLINE"]), max_boots=int(pairs["MAX_BOOTS"]),
                     store_backup=Path(pairs["STORE_BACKUP"]) if pairs.get("STORE_BACKUP")
                     else None)
    except (KeyError, ValueError):
        return None  # a record cut short: treated as none (the switch had not happened)


def boots_counted(prefix: Path) -> int:
    try:
        return int((prefix / BOOTS_NAME).read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def write_outcome(prefix: Path, outcome: Outcome) -> None:
    write_atomically(prefix / OUTCOME_NAME, (
        f"RESULT=failed\nVERSION={_one_line(outcome.version)}\n"
        f"REASON={_one_line(outcome.reason)}\n").encode())


def read_outcome(prefix: Path) -> Outcome | None:
    pairs = _read_pairs(prefix / OUTCOME_NAME)
    if pairs is None:
        return None
    return Outcome(version=pairs.get("VERSION", ""),
                   reason=pairs.get("REASON") or "the new release failed its trial")


def end_trial(prefix: Path, *, keep_backup: bool = False) -> None:
    """Remove the trial's files (the record first: from then on the launcher leaves
    ``current`` alone)."""
    trial = read_trial(prefix)
    for name in (TRIAL_NAME, BOOTS_NAME, OUTCOME_NAME):
        (prefix / name).unlink(missing_ok=True)
    if trial is not None and trial.store_backup is not None and not keep_backup:
        trial.store_backup.unlink(missing_ok=True)


def boot_script_text() -> str:
    return (resources.files("chargerfw.release") / BOOT_SCRIPT).read_text()


def install_boot_script(prefix: Path) -> Path:
    """Write the launcher to ``<prefix>/bin/chargerfw-boot`` (atomically, mode 0755)."""
    target = prefix / "bin" / BOOT_SCRIPT
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{BOOT_SCRIPT}.{os.getpid()}.tmp")
    with resources.as_file(resources.files("chargerfw.release") / BOOT_SCRIPT) as source:
        shutil.copyfile(source, temporary)
    temporary.chmod(0o755)
    os.replace(temporary, target)
    return target
