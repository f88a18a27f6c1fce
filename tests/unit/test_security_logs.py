"""The session-wide log leak check of tests/conftest.py can fail: it finds leaks in log lines only."""

from __future__ import annotations

import json
import logging

import pytest

from tests.conftest import DEFAULT_CREDENTIALS, LogLeakScan, find_log_leaks

# pytester runs an inner session to show that the check fails the test that leaked.
pytest_plugins = ["pytester"]

OPEN_ID = "o9AgO5Kd5ggOC-bXrbNODIiE3bGY"


@pytest.mark.parametrize(
    "line",
    [
        json.dumps({"level": "INFO", "message": "push queued", "open_id": OPEN_ID}),
        json.dumps(
            {"level": "ERROR", "message": "token refresh failed", "secret": DEFAULT_CREDENTIALS["app_secret"]}
        ),
        json.dumps(
            {
                "level": "INFO",
                "message": "sent",
                "url": "http://127.0.0.1/cgi-bin?access_token=LOCAL_" + "x" * 64,
            }
        ),
        json.dumps(
            {"level": "WARNING", "message": "text", "content": "市民说：井盖丢了"}, ensure_ascii=False
        ),
        json.dumps({"level": "INFO", "key": DEFAULT_CREDENTIALS["encoding_aes_key"]}),
        json.dumps({"level": "INFO", "message": "draft opened", "open_id": "oCitizen0001"}),
    ],
    ids=["openid", "app-secret", "access-token", "message-text", "encoding-aes-key", "short-test-openid"],
)
def test_log_leak_found_in_json_line(line: str) -> None:
    # GIVEN a Powertools JSON log line that names a citizen or contains a secret

    # WHEN it is scanned
    leaks = find_log_leaks(line)

    # THEN the leak is reported, without repeating the whole value
    assert leaks
    assert all(OPEN_ID not in leak for leak in leaks)


def test_log_leak_clean_line_passes() -> None:
    # GIVEN a log line with ids, hashes and a ticket number only
    line = json.dumps(
        {"level": "INFO", "message": "push written", "dedup_hash": "ab" * 32, "ticket_id": "DG20241204-0001"}
    )

    # WHEN it is scanned
    leaks = find_log_leaks(line)

    # THEN nothing is reported
    assert leaks == []


def test_log_leak_scan_reads_records_and_captured_output() -> None:
    # GIVEN the scanner, a stdlib log record with an OpenID in its extras, and captured stdout
    scan = LogLeakScan()
    record = logging.LogRecord(
        "devstack.function.TicketWriteFunction", logging.INFO, __file__, 1, "%s", ("x",), None
    )
    record.open_id = OPEN_ID
    stdout = "\n".join(
        [
            "export: 1 ticket, OpenIDs included: " + OPEN_ID,  # printed on purpose, not a log line
            json.dumps({"level": "INFO", "message": "push queued", "from": OPEN_ID}),
        ]
    )

    # WHEN the record is emitted and the output of the call phase is scanned
    scan.emit(record)
    scan.scan_output([("Captured stdout call", stdout), ("Captured stdout setup", stdout)], "call")
    leaks = scan.take()

    # THEN the record and the JSON log line are reported once each, the printed line is not
    assert len(leaks) == 2
    assert leaks[0].startswith("log record of devstack.function.TicketWriteFunction")
    assert leaks[1].startswith("captured stdout call")
    assert scan.take() == []


def test_log_leak_fails_the_test_that_logged_it(pytester: pytest.Pytester) -> None:
    # GIVEN a test session with this repository's conftest and a test that logs an OpenID
    pytester.makeconftest("from tests.conftest import pytest_configure, pytest_runtest_makereport\n")
    pytester.makepyfile(
        test_leaky=f"""
import logging

def test_logs_an_openid():
    logging.getLogger("intake.demo").warning("citizen %s wrote", "{OPEN_ID}")

def test_logs_nothing_sensitive():
    logging.getLogger("intake.demo").warning("ticket %s written", "DG20241204-0001")
"""
    )

    # WHEN the session runs
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")

    # THEN only the leaking test fails, and the report names the kind of leak
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*log lines contain an OpenID*", "*OpenID o9AgO5...*"])
