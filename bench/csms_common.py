"""Shared helpers for the CSMS benchmarks: start `chargerfw csms serve` as its own process."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ServedCsms:
    ocpp_url: str  # ws://host:port/ocpp
    api_url: str  # http://host:port
    pid: int


@contextlib.contextmanager
def served_csms(db: str, extra_args: Sequence[str] = ()) -> Iterator[ServedCsms]:
    """Run the backend on free loopback ports; stop it (only it) with SIGINT on exit."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "chargerfw", "csms", "serve", "--db", db, "--ocpp-port", "0",
         "--api-port", "0", "--files-port", "0", "--allow-outbound-network", "127.0.0.0/8", *extra_args],
        stdout=subprocess.PIPE, text=True,
        env={**os.environ, "CHARGERFW_LOG_LEVEL": os.environ.get("BENCH_BACKEND_LOG_LEVEL", "ERROR")})
    try:
        assert proc.stdout is not None
        ocpp_line, api_line = proc.stdout.readline(), proc.stdout.readline()
        if not ocpp_line.startswith("OCPP"):
            raise RuntimeError(f"csms serve did not start (exit {proc.poll()})")
        yield ServedCsms(ocpp_url=ocpp_line.split()[1].removesuffix("/<charge_point_id>"),
                         api_url=api_line.split()[1].removesuffix("/ocpi/versions"),
                         pid=proc.pid)
    finally:
        if proc.poll() is None:
            proc.send_signal(2)  # SIGINT: clean shutdown
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def percentiles(values: Sequence[float], points: Sequence[int] = (50, 90, 99)) -> dict[str, float]:
    """Nearest-rank percentiles plus max, in the values' unit."""
    if not values:
        return {}
    ordered = sorted(values)
    result = {f"p{p}": ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]
              for p in points}
    result["max"] = ordered[-1]
    return result
