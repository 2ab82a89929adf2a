"""A hostile backend against the station's OCPP 1.6J client: resident memory and answer latency.

The station's client (``OcppClient`` over a real WebSocket on 127.0.0.1, SQLite store in a
temporary directory) runs as a child process (``python bench/ocpp_hostile_frames.py station
--url URL --state DIR``); this process is the backend. After the station booted, the backend
sends ``--frames`` frames in a fixed cycle: CALLs the station must refuse (a lone surrogate in
SendLocalList, a 64-bit listVersion, Arabic-Indic digits in ChangeConfiguration, 100,000 nested
arrays, an unknown action, a 37-character uniqueId, text that is not JSON) and frames it must
not answer (a malformed CALLERROR, CALLRESULTs answering nothing). Each CALL waits for its
answer before the next frame goes.

Printed: the child's VmRSS after the first ``--warmup`` frames and after all of them, its VmHWM,
the answer latency of the hostile CALLs (median, p99) beside that of a well-formed
GetConfiguration sent in every cycle (the baseline, same run), CALLs left unanswered, frames the station sent
that answered nothing it was asked (a malformed CALLERROR answered, say), and how many
connections the station opened (1 = the link was never dropped). ``--json`` prints the figures
as one JSON object.

Figures on the 2-core dev VM, 20,000 frames (7,779 CALLs): VmRSS 36.7 MiB after 4,000 frames,
36.1 MiB after all, 1 connection, p50 0.9 ms, p99 7.5 ms. Baseline before the frame hardening:
the station dropped the link at every 100,000-level frame (7 connections in the first 93 frames,
then its back-off outlasted the bench's patience); a field run of 100,000 frames grew from 69 to
79 MiB.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from station_common import REPO, child_env, nearest_rank, proc_status

DEEP = "[" * 100_000 + "]" * 100_000
BENIGN = "ok-"  # the unique-id prefix of the baseline CALLs


def hostile_cycle(n: int) -> list[tuple[str, str | None]]:
    """One cycle of frames (the ``n``-th): (frame, the unique id its answer carries, or None
    when it must not be answered)."""
    stale = [(f'[3,"stale-{n}-{i}",{{"currentTime":"2020-01-01T00:00:00Z"}}]', None)
             for i in range(10)]
    return [
        # The baseline: a well-formed CALL the station answers normally, in every cycle.
        (f'[2,"{BENIGN}{n}","GetConfiguration",{{"key":["HeartbeatInterval"]}}]',
         f"{BENIGN}{n}"),
        (f'[2,"sl-{n}","SendLocalList",{{"listVersion":1,"updateType":"Full",'
         f'"localAuthorizationList":[{{"idTag":"\\ud800","idTagInfo":{{"status":"Accepted"}}}}]}}]',
         f"sl-{n}"),
        (f'[2,"lv-{n}","SendLocalList",{{"listVersion":9223372036854775807,"updateType":"Full"}}]',
         f"lv-{n}"),
        (f'[2,"cc-{n}","ChangeConfiguration",{{"key":"HeartbeatInterval",'
         f'"value":"\u0661\u0662\u0663"}}]', f"cc-{n}"),
        (DEEP, "-1"),
        (f'[4,"ce-{n}"]', None),
        *stale,
        (f'[2,"un-{n}","FlyToTheMoon",{{}}]', f"un-{n}"),
        (f'[2,"{n:037d}","ClearCache",{{}}]', f"{n:037d}"),
        ("this is not json", "-1"),
    ]


def frames(total: int) -> Iterator[tuple[str, str | None]]:
    for n in itertools.count():
        for item in hostile_cycle(n):
            if total <= 0:
                return
            total -= 1
            yield item


class HostileBackend:
    """The backend's side of the one link: answers the station's CALLs, sends the frames."""

    def __init__(self) -> None:
        self.connections = 0
        self.booted = asyncio.Event()
        self.connected = asyncio.Event()
        self.unexpected: list[str] = []
        self._waiting: dict[str, asyncio.Future[list[Any]]] = {}
        self.ws: Any = None

    async def serve(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        self.connections += 1
        self.ws = ws
        self.connected.set()
        try:
            with contextlib.suppress(ConnectionClosed):
                await self._read(ws)
        finally:
            self.connected.clear()

    async def _read(self, ws: Any) -> None:
        async for raw in ws:
            message = json.loads(raw)
            if message[0] == 2:
                await ws.send(json.dumps([3, message[1], self._answer(message[2])]))
                if message[2] == "BootNotification":
                    self.booted.set()
            elif message[1] in self._waiting:
                self._waiting.pop(message[1]).set_result(message)
            else:
                self.unexpected.append(raw[:200])

    @staticmethod
    def _answer(action: str) -> dict[str, Any]:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if action == "BootNotification":
            return {"status": "Accepted", "currentTime": now, "interval": 300}
        if action == "Heartbeat":
            return {"currentTime": now}
        return {}

    async def send(self, frame: str, reply_id: str | None) -> float | None:
        """Send one frame; for a CALL, the seconds until its answer (None if none came, or
        the station dropped the link: then wait for it to come back)."""
        from websockets.exceptions import ConnectionClosed

        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        if reply_id is not None:
            self._waiting[reply_id] = future
        started = time.perf_counter()
        try:
            await self.connected.wait()
            await self.ws.send(frame)
            if reply_id is None:
                return None
            await asyncio.wait_for(future, 5.0)
        except (TimeoutError, ConnectionClosed):
            self._waiting.pop(reply_id or "", None)
            await asyncio.wait_for(self.connected.wait(), 30)
            return None
        return time.perf_counter() - started


async def run_bench(total: int, warmup: int) -> dict[str, Any]:
    from websockets.asyncio.server import serve

    backend = HostileBackend()
    server = await serve(backend.serve, "127.0.0.1", 0, subprotocols=["ocpp1.6"],
                         max_size=2**20)
    port = server.sockets[0].getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="hostile-") as state:
        child = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(__file__).resolve()), "station",
            "--url", f"ws://127.0.0.1:{port}/ocpp", "--state", state,
            env=child_env(), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        try:
            await asyncio.wait_for(backend.booted.wait(), 30)
            latencies: list[float] = []
            benign: list[float] = []
            unanswered = 0
            rss_after_warmup = 0
            sent = 0
            for frame, reply_id in frames(total):
                if sent == warmup:
                    rss_after_warmup = proc_status(child.pid)["VmRSS"]
                try:
                    took = await backend.send(frame, reply_id)
                except TimeoutError:
                    break  # the station dropped the link and did not come back in time
                sent += 1
                if reply_id is not None:
                    if took is None:
                        unanswered += 1
                    else:
                        (benign if reply_id.startswith(BENIGN) else latencies).append(took)
            # The last frames are read before the figures are taken: one more CALL round trip.
            with contextlib.suppress(TimeoutError):
                await backend.send('[2,"last","ClearCache",{}]', "last")
            status = proc_status(child.pid)
            alive = child.returncode is None
        finally:
            with contextlib.suppress(ProcessLookupError):
                child.terminate()
            _, stderr = await child.communicate()
            server.close()
            await server.wait_closed()
    ordered, baseline = sorted(latencies), sorted(benign)
    return {
        "frames": sent, "warmup": warmup, "calls": len(latencies) + len(benign) + unanswered,
        "benign_calls": len(benign),
        "unanswered": unanswered, "unexpected": len(backend.unexpected),
        "connections": backend.connections, "station_alive": alive,
        "rss_after_warmup_kib": rss_after_warmup, "rss_after_kib": status["VmRSS"],
        "hwm_kib": status["VmHWM"],
        "latency_p50_ms": round(nearest_rank(ordered, 50) * 1000, 3) if ordered else None,
        "latency_p99_ms": round(nearest_rank(ordered, 99) * 1000, 3) if ordered else None,
        "baseline_p50_ms": round(nearest_rank(baseline, 50) * 1000, 3) if baseline else None,
        "baseline_p99_ms": round(nearest_rank(baseline, 99) * 1000, 3) if baseline else None,
        "station_stderr": stderr.decode(errors="replace")[-2000:],
    }


async def run_station(url: str, state: Path) -> None:
    """The station's side: the firmware's OCPP client for one connector, until terminated."""
    sys.path.insert(0, str(REPO))
    from chargerfw.ocpp.config_keys import ConfigurationKeys
    from chargerfw.ocpp.connection import OcppConnection
    from chargerfw.ocpp.station_port import BootInfo
    from chargerfw.ocpp.v16.client import OcppClient
    from chargerfw.store import Store

    store = Store(state / "state.db")
    keys = ConfigurationKeys(store, number_of_connectors=1)
    client = OcppClient(store=store, keys=keys, connection=OcppConnection(url, "HOSTILE-1"),
                        boot=BootInfo(vendor="chargerfw", model="bench"),
                        connector_phases={1: 3})
    await client.run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode")
    station = sub.add_parser("station", help="the station's side (started by the bench)")
    station.add_argument("--url", required=True)
    station.add_argument("--state", type=Path, required=True)
    parser.add_argument("--frames", type=int,
                        default=int(os.environ.get("CHARGERFW_BENCH_HOSTILE_FRAMES", "20000")))
    parser.add_argument("--warmup", type=int, default=None,
                        help="frames before the first memory reading (default: a fifth)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.mode == "station":
        asyncio.run(run_station(args.url, args.state))
        return
    warmup = args.warmup if args.warmup is not None else args.frames // 5
    figures = asyncio.run(run_bench(args.frames, warmup))
    if args.json:
        print(json.dumps(figures))
        return
    print(f"hostile frames: {figures['frames']} ({figures['calls']} CALLs), "
          f"station alive: {figures['station_alive']}, connections: {figures['connections']}")
    print(f"  unanswered CALLs: {figures['unanswered']}, frames answering nothing asked: "
          f"{figures['unexpected']}")
    print(f"  VmRSS after {figures['warmup']} frames: {figures['rss_after_warmup_kib'] / 1024:.1f} "
          f"MiB, after all: {figures['rss_after_kib'] / 1024:.1f} MiB, "
          f"VmHWM {figures['hwm_kib'] / 1024:.1f} MiB")
    print(f"  answer latency of the hostile CALLs: p50 {figures['latency_p50_ms']} ms, "
          f"p99 {figures['latency_p99_ms']} ms; baseline, {figures['benign_calls']} "
          f"well-formed GetConfiguration CALLs among them: p50 {figures['baseline_p50_ms']} ms, "
          f"p99 {figures['baseline_p99_ms']} ms")


if __name__ == "__main__":
    main()
