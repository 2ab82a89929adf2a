"""Profile the backend answering one kind of OCPI page, end to end: fills a SQLite store as
bench/ocpi_sessions.py does (kept under --db for the next run), starts `chargerfw csms
serve` on it, asks --requests pages of one kind while py-spy samples the backend's threads,
prints the client's p50/p99 and where the samples were (inclusive shares per thread).

    .venv/bin/python bench/ocpi_page_profile.py --db /tmp/pages.sqlite3 --kind link
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from csms_common import percentiles, served_csms
from ocpi_sessions import fill, walk

PY_SPY = Path(sys.executable).parent / "py-spy"
# Frames whose inclusive share is printed, per thread (a substring of py-spy's frame name).
WATCHED = {
    "MainThread": ["JSONResponse.render", "ocpi_json_list", "solve_dependencies",
                   "run_in_threadpool", "BaseHTTPMiddleware", "OcpiHeaders",
                   "registered_partner", "paginated"],
    "csms-db": ["partner_by_token", "listing_scope", "listing_total", "select_page",
                "_frozen_sessions", "JSONDecoder", "json_text", "do_commit"],
}


def shares(raw: Path, requests: int, rate: int) -> None:
    """Per thread: busy time per request, and each watched frame's share of it (samples
    of the event loop's callbacks and of the database worker's store calls only, so waiting
    is left out)."""
    busy_roots = {"MainThread": "Handle._run", "csms-db": "AsyncStore._run_group"}
    for thread, root in busy_roots.items():
        total, inclusive = 0, Counter[str]()
        for line in raw.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            frames = stack.split(";")
            if thread not in frames[0] or not any(root in f for f in frames):
                continue
            total += int(count)
            for watched in WATCHED[thread]:
                if any(watched in f for f in frames):
                    inclusive[watched] += int(count)
        per_request = total / rate / requests * 1000
        print(f"  {thread}: {per_request:.2f} ms busy per request")
        for watched, samples in inclusive.most_common():
            print(f"    {watched:<24} {100 * samples / max(total, 1):5.1f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="SQLite file (filled when absent)")
    parser.add_argument("--kind", choices=("one", "link", "cdrs"), default="link",
                        help="1-row session pages, session pages by Link, CDR pages")
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rate", type=int, default=500, help="py-spy samples per second")
    args = parser.parse_args()
    token_file = Path(args.db + ".token")
    if not token_file.exists():
        token_file.write_text(fill(args.db, args.sessions, 3))
    with served_csms(args.db) as csms, httpx.Client(
            base_url=csms.api_url, timeout=60,
            headers={"Authorization": f"Token {token_file.read_text()}"}) as client:
        urls = walk(client, "/ocpi/2.2.1/sessions", 50, args.sessions)
        if len(urls) < args.requests:
            parser.error("--requests must not exceed the listing's pages")
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "samples.txt"
            spy = subprocess.Popen(
                [str(PY_SPY), "record", "--pid", str(csms.pid), "--rate", str(args.rate),
                 "--format", "raw", "--threads", "-o", str(raw)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.5)  # py-spy attached
            times = []
            for i in range(args.requests):
                t0 = time.perf_counter()
                if args.kind == "one":
                    response = client.get("/ocpi/2.2.1/sessions", params={"limit": 1})
                elif args.kind == "link":
                    response = client.get(urls[i])
                else:
                    response = client.get("/ocpi/2.2.1/cdrs", params={"limit": 50})
                times.append((time.perf_counter() - t0) * 1000)
                response.raise_for_status()
            spy.send_signal(2)
            spy.wait()
            p = percentiles(times)
            print(f"{args.kind}: n={len(times)} p50={p['p50']:.1f} ms p99={p['p99']:.1f} ms")
            shares(raw, args.requests, args.rate)


if __name__ == "__main__":
    main()
