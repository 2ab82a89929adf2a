"""`chargerfw support-bundle`: one tar.gz with what support asks for (config with secrets
redacted, recent logs, fault history, OCPP frame log, outbox, transactions, OCPP keys, security
log, versions, the service's status and the selftest result). The builder is
:mod:`chargerfw.control.bundle`, shared with the service's GetDiagnostics upload."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from chargerfw.cli import config_option
from chargerfw.cli.checks import overall_ok
from chargerfw.cli.common import EXIT_USAGE, Station, echo_json, fail, json_option
from chargerfw.cli.selftest import run_selftest
from chargerfw.config import ConfigError, load_config
from chargerfw.control.api import ControlError, StatusRequest, encode_reply
from chargerfw.control.bundle import (
    Bundle,
    BundleFile,
    bundle_folder,
    config_file,
    recent_logs,
    store_files,
    versions,
)
from chargerfw.control.client import ControlClient, ControlUnavailable, control_socket_path
from chargerfw.redact import redact


def _service_status() -> Any:
    """The running service's status (secrets redacted), or that it does not answer."""
    try:
        status = ControlClient(control_socket_path()).request(StatusRequest())
    except (ControlUnavailable, ControlError):
        return {"service": "not running"}
    return redact(encode_reply(StatusRequest, status))


def build_bundle(config_path: str) -> tuple[Bundle, bool]:
    """The bundle's files, and whether the selftest passed."""
    bundle = Bundle(bundle_folder())
    bundle.add(config_file(config_path))
    results = run_selftest(config_path)
    ok = overall_ok(results)
    bundle.add(BundleFile.json("selftest.json",
                               {"passed": ok, "checks": [r.as_dict() for r in results]}))
    bundle.add(BundleFile.json("versions.json", versions()))
    bundle.add(BundleFile.text("logs.txt", recent_logs()))
    bundle.add(BundleFile.json("status.json", _service_status()))
    try:
        config = load_config(config_path)
    except ConfigError:
        config = None
    store = Station(config, Path(config_path)).open_store() if config else None
    if store is None:
        bundle.add(BundleFile.text("store.txt", "no store available (config invalid or no "
                                   "database yet)\n"))
    else:
        try:
            for item in store_files(store):
                bundle.add(item)
        finally:
            store.close()
    return bundle, ok


@click.command("support-bundle")
@config_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True),
              help="archive to write [default: ./chargerfw-support-<time>.tar.gz]")
@json_option
def support_bundle_command(config_path: str, output: str | None, as_json: bool) -> None:
    """One tar.gz with config (secrets redacted), recent logs, fault history, OCPP frame log,
    outbox summary, versions and the selftest result: send it to support."""
    bundle, ok = build_bundle(config_path)
    path = Path(output) if output else Path(f"{bundle.folder}.tar.gz")
    try:
        bundle.write(path)
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}", EXIT_USAGE)
    if as_json:
        echo_json({"path": str(path), "files": [f.name for f in bundle.files],
                   "selftest_passed": ok})
    else:
        click.echo(f"wrote {path} ({path.stat().st_size} bytes, {len(bundle.files)} files); "
                   f"selftest {'passed' if ok else 'FAILED'}")
