"""Shared dependencies: the query service, the time range and filters, the admin guard, orjson responses."""

from __future__ import annotations

import hmac
import time
from typing import Annotated, Any

import orjson
from fastapi import Depends, HTTPException, Query, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.windows import parse_time
from serving.query import QueryError, QueryService, RangeQuery

HOUR_MS = 3_600_000


class OrjsonResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


async def get_query(request: Request) -> QueryService:  # async: no thread-pool hop
    query = getattr(request.app.state, "query", None)
    if query is None:
        raise HTTPException(503, "store not ready")
    return query


Service = Annotated[QueryService, Depends(get_query)]
_TIME_HELP = "RFC 3339 date-time or epoch milliseconds"


async def time_range(
    start: Annotated[str | None, Query(max_length=64, description=f"inclusive; {_TIME_HELP}; default end - 1 h")] = None,
    end: Annotated[str | None, Query(max_length=64, description=f"exclusive; {_TIME_HELP}; default now")] = None,
    country: Annotated[str | None, Query(max_length=128, description="filter: ISO 3166-1 alpha-2")] = None,
    device: Annotated[str | None, Query(max_length=128, description="filter: mobile, desktop or tablet")] = None,
    category: Annotated[str | None, Query(max_length=128, description="filter: item category")] = None,
) -> RangeQuery:
    """The range ``[start, end)`` and at most one dimension filter (each is a pre-computed breakdown)."""
    return range_of(start, end, country, device, category)


def range_of(start: str | None = None, end: str | None = None, country: str | None = None,
             device: str | None = None, category: str | None = None) -> RangeQuery:
    """:func:`time_range` without FastAPI (also used by :mod:`serving.fastpath`); QueryError if invalid."""
    try:
        end_ms = parse_time(end) if end is not None else int(time.time() * 1000)
        start_ms = parse_time(start) if start is not None else end_ms - HOUR_MS
    except ValueError as exc:
        raise QueryError(str(exc)) from None
    filters = {k: v for k, v in (("country", country), ("device", device), ("category", category)) if v is not None}
    if len(filters) > 1:
        raise QueryError("at most one filter (country, device or category) per query; combinations are not kept")
    if not filters:
        return RangeQuery(start_ms, end_ms)
    (dim, value), = filters.items()
    if not value:
        raise QueryError(f"filter {dim} must not be empty")
    return RangeQuery(start_ms, end_ms, dim, value)


Range = Annotated[RangeQuery, Depends(time_range)]
Confidence = Annotated[float, Query(gt=0.0, lt=1.0, description="coverage of the bounds")]

_bearer = HTTPBearer(auto_error=False, description="settings.admin_token")


def require_admin(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """Bearer token equal to ``settings.admin_token``: 401 without one, 403 when wrong or disabled."""
    token = request.app.state.settings.admin_token
    if not token:
        raise HTTPException(403, "admin disabled")
    if credentials is None or not credentials.credentials:
        raise HTTPException(401, "admin token required", headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(credentials.credentials.encode(), token.encode()):
        raise HTTPException(403, "wrong admin token")


Admin = Annotated[None, Depends(require_admin)]
