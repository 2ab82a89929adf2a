"""The services' command lines (`chargerfw [--log-level L] run [--config F] [--control-socket S]`
and `chargerfw [--log-level L] safety run [--config F] [--socket S]`) are read without click
exactly as the click group reads them; any other command line is left to the click group."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from chargerfw.cli import main
from chargerfw.cli import run as run_module
from chargerfw.cli import service as service_module
from chargerfw.cli.service import SafetyOptions, ServiceOptions, safety_options, service_options

ENVIRONMENT = ("CHARGERFW_CONFIG", "CHARGERFW_CONTROL_SOCKET", "CHARGERFW_LOG_LEVEL")


def parsed_by_click(args: list[str], monkeypatch: pytest.MonkeyPatch) -> ServiceOptions:
    """What the click command ``run`` hands to ``serve`` for ``args``."""
    served: list[ServiceOptions] = []
    monkeypatch.setattr(run_module, "serve", served.append)
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (options,) = served
    return options


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    config, other = tmp_path / "station.toml", tmp_path / "other.toml"
    config.write_text("")
    other.write_text("")
    return {"config": str(config), "other": str(other), "socket": str(tmp_path / "ctl.sock"),
            "folder": str(tmp_path)}


@pytest.mark.parametrize(("args", "environment"), [
    (["run"], {}),
    (["run", "--config", "{config}"], {}),
    (["run", "-c", "{config}"], {}),
    (["run", "--config={config}"], {}),
    (["--log-level", "INFO", "run", "--config", "{config}"], {}),
    (["--log-level=debug", "run", "--control-socket", "{socket}", "-c", "{config}"], {}),
    (["run", "-c", "{config}", "--config", "{other}"], {}),
    (["run"], {"CHARGERFW_CONFIG": "{config}", "CHARGERFW_CONTROL_SOCKET": "{socket}",
               "CHARGERFW_LOG_LEVEL": "error"}),
    (["--log-level", "WARNING", "run", "-c", "{other}"], {"CHARGERFW_CONFIG": "{config}",
                                                          "CHARGERFW_LOG_LEVEL": "DEBUG"}),
])
def test_the_service_line_is_read_as_click_reads_it(args, environment, files, monkeypatch):
    for name, value in environment.items():
        monkeypatch.setenv(name, value.format(**files))
    argv = [arg.format(**files) for arg in args]
    assert service_options(argv) == parsed_by_click(argv, monkeypatch)


@pytest.mark.parametrize("args", [
    ["status"],
    ["--log-level", "INFO"],
    ["run", "--help"],
    ["--help", "run"],
    ["run", "--bogus"],
    ["run", "--config"],
    ["run", "-c={config}"],
    ["run", "--config", "{folder}"],  # click refuses a folder
    ["--log-level", "LOUD", "run"],  # click refuses the level
    ["run", "extra"],
    ["config", "show", "run"],
])
def test_any_other_line_is_left_to_click(args, files):
    assert service_options([arg.format(**files) for arg in args]) is None


def test_an_invalid_level_in_the_environment_is_left_to_click(files, monkeypatch):
    monkeypatch.setenv("CHARGERFW_LOG_LEVEL", "LOUD")
    assert service_options(["run"]) is None


def safety_parsed_by_click(args: list[str], monkeypatch: pytest.MonkeyPatch) -> SafetyOptions:
    """What the click command ``safety run`` hands to ``guard`` for ``args``."""
    guarded: list[SafetyOptions] = []
    monkeypatch.setattr(service_module, "guard", guarded.append)
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (options,) = guarded
    return options


@pytest.mark.parametrize(("args", "environment"), [
    (["safety", "run"], {}),
    (["safety", "run", "-c", "{config}"], {}),
    (["--log-level=debug", "safety", "run", "--socket", "{socket}", "--config={config}"], {}),
    (["safety", "run"], {"CHARGERFW_CONFIG": "{config}", "CHARGERFW_LOG_LEVEL": "error"}),
])
def test_the_safety_line_is_read_as_click_reads_it(args, environment, files, monkeypatch):
    for name, value in environment.items():
        monkeypatch.setenv(name, value.format(**files))
    argv = [arg.format(**files) for arg in args]
    assert safety_options(argv) == safety_parsed_by_click(argv, monkeypatch)


@pytest.mark.parametrize("args", [
    ["run"],
    ["safety"],
    ["safety", "run", "--control-socket", "{socket}"],  # the station's option, not this one
    ["run", "--socket", "{socket}"],
    ["safety", "run", "--help"],
    ["safety", "run", "--config", "{folder}"],
])
def test_any_other_line_is_not_the_safety_line(args, files):
    assert safety_options([arg.format(**files) for arg in args]) is None
