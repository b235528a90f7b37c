"""The `limit` and `cursor` query parameters of every list route (db/pagination.py pages)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Depends, Query

from agentplane.db.pagination import DEFAULT_LIMIT, MAX_LIMIT, PageRequest, decode_cursor


def page_request(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None, Query(max_length=200, description="next_cursor of the previous page")
    ] = None,
) -> PageRequest:
    """The `limit` and `cursor` query parameters of a list route."""
    return PageRequest(limit=limit, after=decode_cursor(cursor) if cursor else None)


PageDep = Annotated[PageRequest, Depends(page_request)]


def ordered_page_request(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None, Query(max_length=200, description="next_cursor of the previous page")
    ] = None,
    order: Annotated[
        Literal["oldest", "newest"], Query(description="oldest first (default) or newest first")
    ] = "oldest",
) -> PageRequest:
    """`limit`, `cursor` and `order` of a list that can be read newest first."""
    return PageRequest(
        limit=limit,
        after=decode_cursor(cursor) if cursor else None,
        newest_first=order == "newest",
    )


OrderedPageDep = Annotated[PageRequest, Depends(ordered_page_request)]
