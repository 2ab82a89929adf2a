"""The backend's background work: a crash is logged with its context, settled() waits for
work started meanwhile, close() cancels what still runs; work due when a loop stops is done first."""

from __future__ import annotations

import asyncio

from chargerfw.csms.background import BackgroundTasks, DueWorkLoop
from chargerfw.logs import capture_logs


async def test_a_crash_is_logged_with_its_context() -> None:
    tasks = BackgroundTasks()

    async def fails() -> None:
        raise RuntimeError("charger vanished")

    with capture_logs() as logs:
        tasks.spawn(fails(), "work", "test.work_crashed", command="STOP_SESSION")
        await tasks.settled()
    crashed = [e for e in logs if e["event"] == "test.work_crashed"]
    assert [(e["command"], e["log_level"]) for e in crashed] == [("STOP_SESSION", "error")]
    assert len(tasks) == 0


async def test_settled_waits_for_work_started_meanwhile_and_close_cancels() -> None:
    tasks = BackgroundTasks()
    done: list[str] = []

    async def second() -> None:
        await asyncio.sleep(0.01)
        done.append("second")

    async def first() -> None:
        await asyncio.sleep(0.01)
        tasks.spawn(second(), "second", "test.crashed")
        done.append("first")

    tasks.spawn(first(), "first", "test.crashed")
    await tasks.settled()
    assert done == ["first", "second"]

    async def waits() -> None:
        await asyncio.Event().wait()

    tasks.spawn(waits(), "started", "test.crashed")
    await asyncio.sleep(0)
    tasks.spawn(waits(), "not yet started", "test.crashed")
    assert len(tasks) == 2
    await tasks.close()
    assert len(tasks) == 0


async def test_due_work_left_at_stop_is_done_before_the_loop_ends() -> None:
    due = [3]
    done: list[int] = []

    async def one_round() -> int:
        if due[0] == 0:
            return 0
        due[0] -= 1
        done.append(due[0])
        return 1

    loop = DueWorkLoop("work", one_round, poll_s=60)
    loop.start()
    await asyncio.sleep(0.05)
    assert done == [2, 1, 0]
    due[0] = 2  # due now, nobody woke the loop: it would wait for its poll
    await loop.stop()
    assert done == [2, 1, 0, 1, 0]
