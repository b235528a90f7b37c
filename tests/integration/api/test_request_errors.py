"""Errors a newcomer meets first: a body that does not parse, the wrong kind of token."""

from __future__ import annotations

import httpx

from tests.support.api import MakeOrg, NewUser, assert_problem
from tests.support.builders import issue_token, new_agent


async def test_malformed_json_names_the_body_and_where_it_broke(
    client: httpx.AsyncClient, new_user: NewUser
) -> None:
    user = new_user()
    resp = await client.post(
        "/organizations",
        content=b'{"name": "Acme",\n  "slug": }',
        headers={**user.headers, "Content-Type": "application/json"},
    )

    problem = assert_problem(resp, 422, "validation")
    (error,) = problem["errors"]
    assert (error["field"], error["in"], error["rule"]) == ("body", "body", "json_invalid")
    assert error["message"] == "the body is malformed JSON: Expecting value at line 2, column 11"


async def test_a_runner_token_on_a_user_route_is_told_it_is_a_runner_token(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    runner_token = (await issue_token(client, agent_id, org.owner))["token"]

    resp = await client.get("/me", headers={"Authorization": f"Bearer {runner_token}"})

    problem = assert_problem(resp, 401, "unauthorized")
    assert "runner token" in problem["detail"]
    assert "user routes need a user token" in problem["detail"]
    # and it still works where it belongs
    registered = await client.post(
        "/runner/sessions",
        json={"socket_id": "laptop"},
        headers={"Authorization": f"Bearer {runner_token}"},
    )
    assert registered.status_code == 201, registered.text
