"""What each charger did and what the fleet did: the counters, the totals, the exit code, and
the report for a person."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

MAX_ERRORS_KEPT = 20  # per charger: CALLERROR details and failure messages kept for the report


@dataclass
class MessageCount:
    sent: int = 0  # CALL frames out (a resend counts again)
    confirmed: int = 0  # CALLRESULT frames in for them
    errors: int = 0  # CALLERROR frames in for them


@dataclass
class ChargerReport:
    charge_point_id: str
    id_tag: str
    boot_accepted: bool = False
    registration: str | None = None
    connects: int = 0
    connection_failures: int = 0
    last_connection_error: str | None = None
    sessions_started: int = 0
    sessions_stopped: int = 0
    sessions_confirmed: int = 0  # StartTransaction answered with a transactionId
    messages: dict[str, MessageCount] = field(default_factory=dict)
    backend_calls: dict[str, int] = field(default_factory=dict)  # CALLs the backend sent us
    call_errors: int = 0
    call_error_details: list[dict[str, str]] = field(default_factory=list)
    frames_missed: int = 0
    outbox_pending: int = 0
    outbox_dead: int = 0
    runs_completed: int = 0
    steps_done: int = 0
    steps_failed: int = 0
    failures: list[str] = field(default_factory=list)
    restarts: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.steps_failed += 1
        if len(self.failures) < MAX_ERRORS_KEPT:
            self.failures.append(message)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FleetReport:
    csms_url: str
    mode: str  # "scenario:<name>" or "random"
    count: int
    seed: int
    started_at: float
    elapsed_s: float = 0.0
    all_online_after_s: float | None = None
    interrupted: bool = False
    loop_lag_ms: dict[str, float] = field(default_factory=dict)
    chargers: list[ChargerReport] = field(default_factory=list)

    def totals(self) -> dict[str, Any]:
        messages: dict[str, MessageCount] = {}
        for charger in self.chargers:
            for action, count in charger.messages.items():
                total = messages.setdefault(action, MessageCount())
                total.sent += count.sent
                total.confirmed += count.confirmed
                total.errors += count.errors
        sums = {name: sum(getattr(c, name) for c in self.chargers) for name in (
            "connects", "connection_failures", "sessions_started", "sessions_stopped",
            "sessions_confirmed", "call_errors", "frames_missed", "outbox_pending",
            "outbox_dead", "runs_completed", "steps_done", "steps_failed")}
        return {"chargers": len(self.chargers),
                "boots_accepted": sum(c.boot_accepted for c in self.chargers),
                **sums,
                "restarts": sum(len(c.restarts) for c in self.chargers),
                "messages": {a: asdict(m) for a, m in sorted(messages.items())}}

    @property
    def failed(self) -> bool:
        """A step failed or a charger was never accepted by the backend."""
        return any(c.steps_failed or not c.boot_accepted for c in self.chargers)

    def exit_code(self) -> int:
        if self.failed:
            return 1
        return 130 if self.interrupted else 0

    def to_dict(self) -> dict[str, Any]:
        return {"csms_url": self.csms_url, "mode": self.mode, "count": self.count,
                "seed": self.seed, "started_at": self.started_at,
                "elapsed_s": round(self.elapsed_s, 3),
                "all_online_after_s": (None if self.all_online_after_s is None
                                       else round(self.all_online_after_s, 3)),
                "interrupted": self.interrupted, "failed": self.failed,
                "loop_lag_ms": self.loop_lag_ms, "totals": self.totals(),
                "chargers": [c.to_dict() for c in self.chargers]}



def render_report(report: FleetReport, max_rows: int = 500) -> str:
    """The report for a person: one row per charger, totals, what failed."""

    def pair(counts: dict[str, MessageCount], action: str) -> str:
        count = counts.get(action)
        if count is None:
            return "0/0"
        return f"{count.sent}/{count.confirmed}" + (f"!{count.errors}" if count.errors else "")

    header = (f"{'charger':<16} {'boot':<8} {'conn':>4} {'fail':>4} {'sess':>9} "
              f"{'Start':>7} {'Stop':>7} {'MeterVal':>9} {'Status':>7} {'CERR':>4} "
              f"{'steps':>9}")
    lines = [f"fleet {report.mode}: {report.count} chargers -> {report.csms_url}, "
             f"seed {report.seed}, {report.elapsed_s:.1f} s"
             + (" (interrupted)" if report.interrupted else ""),
             "messages: sent/confirmed (!CALLERROR); sess: started/stopped/confirmed", header]
    for c in report.chargers[:max_rows]:
        boot = "accepted" if c.boot_accepted else (c.registration or "none")
        lines.append(
            f"{c.charge_point_id:<16} {boot:<8} {c.connects:>4} {c.connection_failures:>4} "
            f"{f'{c.sessions_started}/{c.sessions_stopped}/{c.sessions_confirmed}':>9} "
            f"{pair(c.messages, 'StartTransaction'):>7} {pair(c.messages, 'StopTransaction'):>7} "
            f"{pair(c.messages, 'MeterValues'):>9} {pair(c.messages, 'StatusNotification'):>7} "
            f"{c.call_errors:>4} {f'{c.steps_done}/{c.steps_failed}':>9}")
    if len(report.chargers) > max_rows:
        lines.append(f"... {len(report.chargers) - max_rows} more chargers (--json for all)")
    totals = report.totals()
    lines.append("")
    lines.append(
        f"totals: boots accepted {totals['boots_accepted']}/{totals['chargers']}, "
        f"connects {totals['connects']}, connection failures {totals['connection_failures']}, "
        f"sessions started {totals['sessions_started']} stopped {totals['sessions_stopped']} "
        f"confirmed {totals['sessions_confirmed']}, CALLERRORs {totals['call_errors']}, "
        f"steps {totals['steps_done']} done {totals['steps_failed']} failed, "
        f"restarts {totals['restarts']}")
    for action, count in totals["messages"].items():
        lines.append(f"  {action:<20} sent {count['sent']:>7}  confirmed {count['confirmed']:>7}"
                     f"  CALLERROR {count['errors']:>5}")
    if totals["outbox_pending"] or totals["outbox_dead"] or totals["frames_missed"]:
        lines.append(f"  undelivered at the end: {totals['outbox_pending']} pending, "
                     f"{totals['outbox_dead']} given up; frames not counted (log wrapped): "
                     f"{totals['frames_missed']}")
    if report.all_online_after_s is not None:
        lines.append(f"all chargers online after {report.all_online_after_s:.1f} s")
    if report.loop_lag_ms:
        lag = report.loop_lag_ms
        lines.append(f"event loop lag ms: median {lag['median']}, p95 {lag['p95']}, "
                     f"max {lag['max']}")
    problems = [(c.charge_point_id, f) for c in report.chargers for f in c.failures]
    problems += [(c.charge_point_id, f"CALLERROR {e['code']} to {e['action']}: "
                                     f"{e['description']}")
                 for c in report.chargers for e in c.call_error_details]
    problems += [(c.charge_point_id, r) for c in report.chargers for r in c.restarts]
    if problems:
        lines.append("")
        lines.append("what failed:")
        for cp_id, text in problems[:50]:
            lines.append(f"  {cp_id}: {text}")
        if len(problems) > 50:
            lines.append(f"  ... {len(problems) - 50} more (--json for all)")
    return "\n".join(lines)
