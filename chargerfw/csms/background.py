"""Work a backend component starts and does not wait for (a command's result, a profile's
result, a site's re-allocation): kept so that closing the component ends it, and guarded so
that a crash is logged with its context instead of vanishing with the task; and the loops a
backend runs for as long as it serves (pushes, sweeps), started and stopped by name."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

from chargerfw.logs import get_logger

log = get_logger(__name__)


class BackgroundTasks:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, work: Coroutine[Any, Any, None], name: str, crash_event: str,
              **context: Any) -> None:
        """Run ``work``; if it raises, log ``crash_event`` with ``context`` and the trace."""
        async def guarded() -> None:
            try:
                await work
            except Exception:
                log.exception(crash_event, **context)

        def finished(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            work.close()  # cancelled before it started: ended here, not left unawaited

        task = asyncio.create_task(guarded(), name=name)
        self._tasks.add(task)
        task.add_done_callback(finished)

    async def settled(self) -> None:
        """Wait until no task runs, also those started meanwhile."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Cancel every task and wait for each to end."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._tasks.discard(task)  # its done callback may not have run yet


class BackgroundLoop:
    """A loop run as a task between :meth:`start` and :meth:`stop`."""

    def __init__(self, name: str, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self.name = name
        self._loop = loop
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


# How long a stopping loop goes on with the work due (what is left waits for the next start).
DRAIN_ON_STOP_S = 5.0


class DueWorkLoop:
    """Work that piles up and is done off the request path, in rounds: ``round`` does some
    and returns how much it did. Rounds follow each other while they find work, then the
    loop waits for :meth:`wake` (or ``poll_s``, for work another process left). A round that
    fails is logged and tried again at the next wake or poll; ``after_work`` is called after
    every round that did something."""

    def __init__(self, name: str, round: Callable[[], Coroutine[Any, Any, int]],
                 poll_s: float, after_work: Callable[[], None] | None = None) -> None:
        self.name = name
        self.poll_s = poll_s
        self._round = round
        self._after_work = after_work
        self._wake = asyncio.Event()
        self._loop = BackgroundLoop(name, self._run)

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        """Stop the loop, then do what is due now (a clean shutdown right after a stop still
        leaves its CDR built), for at most ``DRAIN_ON_STOP_S``."""
        await self._loop.stop()
        try:
            async with asyncio.timeout(DRAIN_ON_STOP_S):
                while await self._round():
                    if self._after_work is not None:
                        self._after_work()
        except TimeoutError:
            log.warning("csms.due_work_left", work=self.name)
        except Exception:
            log.exception("csms.due_work_failed", work=self.name)

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                while await self._round():
                    if self._after_work is not None:
                        self._after_work()
            except Exception:  # a database hiccup must not end the loop
                log.exception("csms.due_work_failed", work=self.name)
            # asyncio.timeout, not wait_for: see PushWorker._run.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_s):
                    await self._wake.wait()
