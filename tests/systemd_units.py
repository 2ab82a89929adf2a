"""Verify chargerfw's systemd unit the way it is installed, with its venv path pointed elsewhere."""

from __future__ import annotations

import subprocess
from pathlib import Path

# The executable the unit in systemd/ names; install.sh rewrites the venv part for another PREFIX.
INSTALLED_EXECUTABLE = "/opt/chargerfw/venv/bin/chargerfw"


def assert_unit_verifies_clean(unit_text: str, executable: Path, workdir: Path) -> None:
    """Point ExecStart at `executable` (systemd checks it exists), run `systemd-analyze verify`.

    Unknown or misspelt keys only warn, so any output on stderr counts as a failure too.
    """
    assert INSTALLED_EXECUTABLE in unit_text
    unit = workdir / "chargerfw.service"
    unit.write_text(unit_text.replace(INSTALLED_EXECUTABLE, str(executable)))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
