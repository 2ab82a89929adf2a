"""The boot launcher (``chargerfw-boot``, POSIX sh) over fake slots whose ``bin/chargerfw``
says which slot ran and exits as told: a release on trial that keeps failing, or whose deadline
passed, is rolled back before it starts again."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from chargerfw.release import build_manifest, slot_status
from chargerfw.release.trial import (
    BOOTS_NAME,
    OUTCOME_NAME,
    Trial,
    boots_counted,
    end_trial,
    install_boot_script,
    read_outcome,
    read_trial,
    write_outcome,
    write_trial,
)
from chargerfw.release.trial import Outcome as TrialOutcome


def make_slot(prefix: Path, version: str, exit_code: int) -> Path:
    slot = prefix / "releases" / version
    (slot / "bin").mkdir(parents=True)
    (slot / "bin" / "chargerfw").write_text(
        f'#!/bin/sh\necho "ran {version} $*"\nexit {exit_code}\n')
    (slot / "bin" / "chargerfw").chmod(0o755)
    (slot / "manifest.json").write_bytes(build_manifest(version, "0", {}).to_json_bytes())
    (slot / ".complete").write_text(version + "\n")
    return slot


@pytest.fixture
def prefix(tmp_path: Path) -> Path:
    prefix = tmp_path / "opt"
    make_slot(prefix, "1.0", 0)
    make_slot(prefix, "2.0", 1)  # the new release cannot start
    os.symlink("releases/1.0", prefix / "previous")
    os.symlink("releases/2.0", prefix / "current")
    install_boot_script(prefix)
    return prefix


def boot(prefix: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CHARGERFW_PREFIX"}
    return subprocess.run([str(prefix / "bin" / "chargerfw-boot"), *args], capture_output=True,
                          text=True, env=env, timeout=10)


def test_without_a_trial_it_starts_current_with_the_arguments(prefix):
    done = boot(prefix, "run", "--config", "/etc/x.toml")
    assert (done.returncode, done.stdout) == (1, "ran 2.0 run --config /etc/x.toml\n")
    assert not (prefix / BOOTS_NAME).exists()


def test_repeated_failed_starts_roll_back_after_the_limit(prefix):
    write_trial(prefix, Trial("2.0", "1.0", deadline=time.time() + 3600, max_boots=2))
    assert [boot(prefix, "run").stdout for _ in range(2)] == ["ran 2.0 run\n"] * 2
    assert boots_counted(prefix) == 2
    done = boot(prefix, "run")
    assert done.stdout == "ran 1.0 run\n" and done.returncode == 0
    assert "rolled back to 1.0: 2.0 did not get healthy in 2 starts" in done.stderr
    status = slot_status(prefix)
    assert (status.current.version, status.previous.version) == ("1.0", "2.0")
    assert read_outcome(prefix) == TrialOutcome("2.0", "2.0 did not get healthy in 2 starts")
    # The old release is current now: later starts leave it alone.
    assert boot(prefix, "run").stdout == "ran 1.0 run\n"
    assert slot_status(prefix).current.version == "1.0"


def test_a_past_deadline_rolls_back_at_the_next_start(prefix):
    write_trial(prefix, Trial("2.0", "1.0", deadline=time.time() - 1, max_boots=5))
    assert boot(prefix).stdout == "ran 1.0 \n"
    assert read_outcome(prefix).reason == "2.0 did not get healthy before its deadline"


def test_an_outcome_with_the_failed_release_still_current_finishes_the_switch_back(prefix):
    """The release on trial found itself unhealthy, wrote the outcome, and was cut before its
    own switch back."""
    write_trial(prefix, Trial("2.0", "1.0", deadline=time.time() + 3600, max_boots=5))
    write_outcome(prefix, TrialOutcome("2.0", "self-test failed: pins readable"))
    assert boot(prefix).stdout == "ran 1.0 \n"
    assert read_outcome(prefix).reason == "self-test failed: pins readable"


def test_a_trial_for_a_release_that_is_not_current_changes_nothing(prefix):
    """A cut before the switch: the old release is still current and reports it."""
    os.replace(prefix / "previous", prefix / "tmp")
    os.replace(prefix / "current", prefix / "previous")
    os.replace(prefix / "tmp", prefix / "current")
    write_trial(prefix, Trial("2.0", "1.0", deadline=time.time() - 1, max_boots=1))
    assert boot(prefix).stdout == "ran 1.0 \n"
    assert not (prefix / OUTCOME_NAME).exists() and boots_counted(prefix) == 0


def test_no_rollback_without_a_complete_previous_slot(prefix):
    (prefix / "releases" / "1.0" / ".complete").unlink()
    write_trial(prefix, Trial("2.0", "1.0", deadline=time.time() - 1, max_boots=1))
    assert boot(prefix).stdout == "ran 2.0 \n"
    assert not (prefix / OUTCOME_NAME).exists()


def test_the_trial_record_round_trips_and_ends(tmp_path):
    backup = tmp_path / "state.db.before-update"
    backup.write_bytes(b"db")
    trial = Trial("2.0", "1.0", deadline=1234567890.0, max_boots=3, store_backup=backup)
    write_trial(tmp_path, trial)
    assert read_trial(tmp_path) == trial
    (tmp_path / "trial").write_text("NEW_VERSION=2.0\nDEADL")  # cut short
    assert read_trial(tmp_path) is None
    write_trial(tmp_path, trial)
    end_trial(tmp_path)
    assert read_trial(tmp_path) is None and not backup.exists()
