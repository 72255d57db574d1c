"""A lean ASGI path for well-formed aggregate GETs; FastAPI answers everything else.

Per request FastAPI's routing, dependency solving and pydantic validation cost about as much
CPU as the query itself (~0.7 ms of ~2.5 ms), which at 200 requests/s on a shared 2-core machine
decides the tail. This middleware handles only requests it can validate completely by the
routes' own rules (:data:`ROUTES`: the same names, defaults and limits as
:mod:`serving.routes.aggregates`), answers them with the same :class:`QueryService` call and the
same orjson body, and passes anything else untouched to FastAPI: unknown or repeated parameters,
anything that does not parse plainly, and every error (FastAPI then answers it exactly as
before, with its messages and status codes). The routes in :mod:`serving.routes.aggregates`
stay the contract (and the OpenAPI schema); a test checks both paths give the same answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl

import orjson

from serving.query import QueryService, RangeQuery
from serving.routes.deps import range_of

_INT = re.compile(r"[1-9][0-9]{0,8}")
_FLOAT = re.compile(r"[0-9]{1,12}(\.[0-9]{1,17})?|\.[0-9]{1,17}")
_RANGE = {"start": 64, "end": 64, "country": 128, "device": 128, "category": 128}


class _Bad(Exception):
    """Not for the fast path: let FastAPI answer."""


def _text(lo: int, hi: int) -> Callable[[str], str]:
    def check(v: str) -> str:
        if not lo <= len(v) <= hi:
            raise _Bad
        return v

    return check


def _int(lo: int, hi: int) -> Callable[[str], int]:
    def check(v: str) -> int:
        if not _INT.fullmatch(v) or not lo <= int(v) <= hi:
            raise _Bad
        return int(v)

    return check


def _float(lo: float, hi: float, *, open_: bool) -> Callable[[str], float]:
    def check(v: str) -> float:
        if not _FLOAT.fullmatch(v):
            raise _Bad
        x = float(v)
        if not (lo < x < hi if open_ else lo <= x <= hi):
            raise _Bad
        return x

    return check


_field = _text(1, 160)
_conf = _float(0.0, 1.0, open_=True)

#: path -> (scalar params: name -> (parser, default); list params; call(service, range, params)).
ROUTES: dict[str, tuple[dict[str, tuple[Callable, Any]], dict[str, Callable], Callable]] = {
    "/v1/aggregates/distinct": ({"field": (_field, None), "confidence": (_conf, 0.95)}, {},
                                lambda q, r, p: q.distinct(p["field"], r, p["confidence"])),
    "/v1/aggregates/top": ({"field": (_field, None), "k": (_int(1, 1000), 10)}, {},
                           lambda q, r, p: q.top(p["field"], r, p["k"])),
    "/v1/aggregates/quantiles": ({"field": (_field, None)}, {"q": _float(0.0, 1.0, open_=False)},
                                 lambda q, r, p: q.quantiles(p["field"], r, p.get("q") or [0.5])),
    "/v1/aggregates/frequency": ({"field": (_field, None), "value": (_text(1, 1024), None), "confidence": (_conf, 0.95)},
                                 {}, lambda q, r, p: q.frequency(p["field"], p["value"], r, p["confidence"])),
    "/v1/aggregates/timeseries": ({"metric": (_text(0, 32), "events"), "step": (_int(1, 7 * 86_400), 60)}, {},
                                  lambda q, r, p: q.timeseries(p["metric"], p["step"], r)),
    "/v1/samples": ({"n": (_int(1, 10_000), 100)}, {}, lambda q, r, p: q.samples(p["n"], r)),
}


def parse(path: str, query_string: bytes) -> tuple[Callable, RangeQuery, dict] | None:
    """(call, range, params) for a request the fast path can answer, else None."""
    route = ROUTES.get(path)
    if route is None:
        return None
    scalars, lists, call = route
    try:
        pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True, strict_parsing=False,
                          encoding="utf-8", errors="strict")
    except (UnicodeDecodeError, ValueError):
        return None
    params: dict[str, Any] = {}
    rng: dict[str, str] = {}
    try:
        for name, value in pairs:
            if name in lists:
                params.setdefault(name, []).append(lists[name](value))
            elif name in scalars or name in _RANGE:
                if name in params or name in rng:
                    return None  # repeated: FastAPI decides which one counts
                if name in _RANGE:
                    if len(value) > _RANGE[name]:
                        return None
                    rng[name] = value
                else:
                    params[name] = scalars[name][0](value)
            else:
                return None
    except _Bad:
        return None
    for name, (_, default) in scalars.items():
        if name not in params:
            if default is None:
                return None  # a required parameter is missing: FastAPI's 422
            params[name] = default
    if "q" in lists and not 1 <= len(params.get("q", [0.5])) <= 100:
        return None
    try:
        return call, range_of(**rng), params
    except ValueError:  # QueryError included: FastAPI answers it
        return None


class FastPath:
    """ASGI middleware: answer what :func:`parse` accepts, pass everything else on."""

    def __init__(self, app, fastapi_app) -> None:
        self.app, self.fastapi_app = app, fastapi_app
        self._routes: dict[str, Any] = {}

    def _route(self, path: str) -> Any:
        """The APIRoute of ``path`` (what routing would have put in the scope: the latency metric's label)."""
        route = self._routes.get(path)
        if route is None:
            todo = list(self.fastapi_app.routes)
            while todo and route is None:
                r = todo.pop()
                inner = getattr(r, "original_router", None)
                if inner is not None:
                    todo += inner.routes
                elif getattr(r, "path", None) == path:
                    route = r
            route = self._routes[path] = route or SimpleNamespace(path=path)
        return route

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or scope["path"] not in ROUTES:
            await self.app(scope, receive, send)
            return
        service: QueryService | None = getattr(self.fastapi_app.state, "query", None)
        parsed = parse(scope["path"], scope.get("query_string", b"")) if service is not None else None
        if parsed is None:
            await self.app(scope, receive, send)
            return
        call, rng, params = parsed
        try:
            body = orjson.dumps(call(service, rng, params), option=orjson.OPT_NON_STR_KEYS)
        except Exception:  # noqa: BLE001 - errors (bad field, Redis down, ...) are FastAPI's to answer
            await self.app(scope, receive, send)
            return
        scope["route"] = self._route(scope["path"])
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})
