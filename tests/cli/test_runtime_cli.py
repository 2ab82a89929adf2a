"""`chargerfw run` and `chargerfw sim station` refuse unusable input with a clear message and
exit status 2, before touching any hardware or state."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from runtime_helpers import SIM_TOML

from chargerfw.cli import main


def test_run_with_a_missing_config_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["run", "--config", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2
    assert "cannot read file" in result.output


def test_run_without_an_ocpp_section_exits_2(tmp_path: Path) -> None:
    text = SIM_TOML.read_text()
    config = tmp_path / "station.toml"
    config.write_text(text[:text.index("[ocpp]")] + f'[storage]\npath = "{tmp_path}/s.db"\n')
    result = CliRunner().invoke(main, ["run", "--config", str(config)])
    assert result.exit_code == 2
    assert "[ocpp] section is required" in result.output
    assert not (tmp_path / "s.db").exists()


def test_sim_station_refuses_a_non_websocket_csms_url(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["sim", "station", "--config", str(SIM_TOML),
                                       "--csms", "http://127.0.0.1:9000/ocpp"])
    assert result.exit_code == 2
    assert "ws:// or wss://" in result.output
