"""chargerfw.logs: the line format journald gets, the level filter, secrets, tracebacks, and
capture for tests."""

from __future__ import annotations

import io
import threading

import pytest

from chargerfw.logs import capture_logs, get_logger, setup_logging


@pytest.fixture
def stream():
    out = io.StringIO()
    setup_logging("INFO", stream=out)
    yield out
    setup_logging("DEBUG")


def test_a_line_is_level_event_then_fields_in_call_order(stream):
    get_logger("t").warning("meter.fault", model="sdm630", address=3, reading=None)
    assert stream.getvalue() == (
        "level='warning' event='meter.fault' model='sdm630' address=3 reading=None\n")


def test_secrets_are_never_written(stream):
    get_logger("t").info("ocpp.connect", password="hunter2", token="abc", url="ws://x")
    line = stream.getvalue()
    assert "hunter2" not in line and "abc" not in line
    assert "password='***'" in line and "token='***'" in line and "url='ws://x'" in line


def test_lines_below_the_level_are_dropped(stream):
    log = get_logger("t")
    log.debug("noise")
    log.info("kept")
    assert stream.getvalue() == "level='info' event='kept'\n"


def test_exception_logs_an_error_with_the_traceback(stream):
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        get_logger("t").exception("handler.failed", method="x")
    line = stream.getvalue()
    assert line.startswith("level='error' event='handler.failed' method='x' exception=")
    assert "RuntimeError: boom" in line and "Traceback" in line


def test_capture_sees_every_level_and_ends_with_the_block(stream):
    log = get_logger("t")
    with capture_logs() as logs:
        log.debug("below.the.level", n=1)
        log.error("kept", n=2)
    log.info("after")
    assert logs == [{"event": "below.the.level", "log_level": "debug", "n": 1},
                    {"event": "kept", "log_level": "error", "n": 2}]


def test_lines_from_threads_do_not_interleave(stream):
    log = get_logger("t")

    def write(name: str) -> None:
        for i in range(200):
            log.info("tick", thread=name, i=i, padding="x" * 200)

    threads = [threading.Thread(target=write, args=(f"t{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 800
    assert all(line.startswith("level='info' event='tick'") and line.endswith("x'")
               for line in lines)
