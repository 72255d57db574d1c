"""``tributary query``: ask serving for an aggregate, print the JSON answer."""

from __future__ import annotations

from typing import Annotated

import typer

ROUTES = {
    "distinct": "/v1/aggregates/distinct",
    "top": "/v1/aggregates/top",
    "quantiles": "/v1/aggregates/quantiles",
    "frequency": "/v1/aggregates/frequency",
    "timeseries": "/v1/aggregates/timeseries",
    "samples": "/v1/samples",
    "models": "/v1/models",
}


def register(app: typer.Typer) -> None:
    app.command()(query)


def query(
    what: Annotated[str, typer.Argument(help=f"one of: {', '.join(ROUTES)}")],
    field: Annotated[str | None, typer.Option(help="event field (user_id, item_id, price, features.<name> …)")] = None,
    start: Annotated[str | None, typer.Option(help="RFC 3339 or epoch ms; default: an hour ago")] = None,
    end: Annotated[str | None, typer.Option(help="RFC 3339 or epoch ms; default: now")] = None,
    k: Annotated[int | None, typer.Option(help="top: how many items")] = None,
    q: Annotated[list[float] | None, typer.Option(help="quantiles: repeat for several")] = None,
    value: Annotated[str | None, typer.Option(help="frequency: the value to count")] = None,
    metric: Annotated[str | None, typer.Option(help="timeseries: events or late_events")] = None,
    step: Annotated[int | None, typer.Option(help="timeseries: seconds per point")] = None,
    n: Annotated[int | None, typer.Option(help="samples: how many")] = None,
    country: Annotated[str | None, typer.Option()] = None,
    device: Annotated[str | None, typer.Option()] = None,
    category: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Query serving (``tributary query distinct --field user_id``) and print the answer as JSON."""
    import httpx
    import orjson

    from app.config import Settings

    if what not in ROUTES:
        raise typer.BadParameter(f"unknown query {what!r}; one of {', '.join(ROUTES)}")
    params: list[tuple[str, str]] = []
    for name, val in (("field", field), ("start", start), ("end", end), ("k", k), ("value", value), ("metric", metric),
                      ("step", step), ("n", n), ("country", country), ("device", device), ("category", category)):  # fmt: skip
        if val is not None:
            params.append((name, str(val)))
    params += [("q", str(x)) for x in q or ()]
    s = Settings()
    try:
        r = httpx.get(s.serving_url + ROUTES[what], params=params, timeout=10)
    except httpx.HTTPError as exc:
        typer.echo(f"serving at {s.serving_url} did not answer: {exc} (is the stack up? `tributary status`)", err=True)
        raise typer.Exit(2) from None
    typer.echo(orjson.dumps(r.json(), option=orjson.OPT_INDENT_2).decode())
    if r.status_code >= 400:
        raise typer.Exit(1)
