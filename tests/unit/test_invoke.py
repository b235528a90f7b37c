"""`make invoke`'s own parts: reading the event file, printing the result, the exit code."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from agentplane.invoke import (
    ACTION_PLACEHOLDER,
    EventFileError,
    load_event,
    main,
    readable,
    server_errors,
)

EVENTS = Path(__file__).resolve().parents[2] / "events"


def test_a_missing_event_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.json"

    assert main(["api", str(missing)]) == 2

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"invoke: no event file {missing} (the samples are in events/)\n"


def test_an_event_file_that_is_not_json_names_where(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"version": "2.0",\n  "rawPath": }')

    with pytest.raises(EventFileError, match=r"is not JSON: Expecting value at line 2, column 14"):
        load_event(broken, None)


def test_placeholders_are_filled_in() -> None:
    event = load_event(
        EVENTS / "actions_post_approve.json",
        "user-token",
        {ACTION_PLACEHOLDER: "2f0c3f57-0000-4000-8000-000000000001"},
    )

    assert event["headers"]["authorization"] == "Bearer user-token"
    assert event["rawPath"] == "/actions/2f0c3f57-0000-4000-8000-000000000001/approve"
    assert event["pathParameters"]["id"] == "2f0c3f57-0000-4000-8000-000000000001"


def test_every_placeholder_of_the_sample_events_is_one_invoke_fills() -> None:
    known = {
        "REPLACE_WITH_TOKEN",
        "REPLACE_WITH_RUNNER_TOKEN",
        "REPLACE_WITH_SESSION_ID",
        "REPLACE_WITH_ACTION_ID",
        "REPLACE_WITH_RUN_ID",
    }
    used = {m for p in EVENTS.glob("*.json") for m in re.findall(r"REPLACE_\w+", p.read_text())}
    assert used <= known


def test_a_base64_body_is_printed_decoded() -> None:
    problem = {"type": "https://agentplane.dev/problems/not-found", "status": 404}
    result = {
        "statusCode": 404,
        "headers": {"content-type": "application/problem+json"},
        "body": base64.b64encode(json.dumps(problem).encode()).decode(),
        "isBase64Encoded": True,
    }

    shown = readable(result)

    assert json.loads(shown["body"]) == problem
    assert shown["isBase64Encoded"] is False
    assert readable([result]) == [shown]


def test_a_binary_body_is_left_as_it_came() -> None:
    result = {
        "statusCode": 200,
        "body": base64.b64encode(b"\xff\xfe").decode(),
        "isBase64Encoded": True,
    }
    assert readable(result) == result


def test_server_errors_are_the_5xx_results() -> None:
    results = [
        {"statusCode": 200},
        {"statusCode": 503},
        {"sessions_offline": 0},
        {"statusCode": 404},
    ]
    assert server_errors(results) == [503]
