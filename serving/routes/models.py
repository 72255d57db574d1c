"""``POST /v1/predict``, ``GET /v1/models`` and ``POST /v1/models/{name}/activate``.

The predict body is decoded with orjson and checked by hand (no model object per impression):
the decoded dicts go straight to :func:`app.features.features`, the function the learner uses.
Accepted bodies: one impression object, a list of at most :data:`MAX_BATCH` of them, or
``{"impressions": [...], "model": "name"}``; the model may also be named with ``?model=``.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from starlette.concurrency import run_in_threadpool

from serving.models import ModelRegistry, UnknownModel
from serving.routes.deps import Admin, OrjsonResponse

router = APIRouter(tags=["models"])

MAX_BATCH = 1_000
INLINE_BATCH = 64  # larger batches are scored in the thread pool, off the event loop
_STR_FIELDS = ("event_id", "user_id", "session_id", "item_id", "category", "country", "impression_id")
_DEVICES = frozenset({"mobile", "desktop", "tablet"})
_MAPS = ("features", "context")

_IMPRESSION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "the events.v1 fields of an impression (all optional here; unknown fields are ignored)",
    "properties": {
        **{f: {"type": "string", "minLength": 1, "maxLength": 128} for f in _STR_FIELDS},
        "device": {"type": "string", "enum": sorted(_DEVICES)},
        "price": {"type": "number", "minimum": 0},
        "event_time": {"oneOf": [{"type": "integer"}, {"type": "string", "format": "date-time"}]},
        "features": {"type": "object", "additionalProperties": {"type": "number"}, "maxProperties": 64},
        "context": {"type": "object", "additionalProperties": {"type": "number"}, "maxProperties": 64,
                    "description": "stream features, e.g. {\"user_recent\": 3, \"item_recent\": 12}"},
    },
}  # fmt: skip
_BODY_SCHEMA = {
    "oneOf": [
        _IMPRESSION_SCHEMA,
        {"type": "array", "items": _IMPRESSION_SCHEMA, "minItems": 1, "maxItems": MAX_BATCH},
        {
            "type": "object",
            "required": ["impressions"],
            "properties": {
                "model": {"type": "string"},
                "impressions": {"type": "array", "items": _IMPRESSION_SCHEMA, "minItems": 1, "maxItems": MAX_BATCH},
            },
        },
    ]
}


class BadBody(ValueError):
    pass


def _check_impression(d: Any, i: int) -> None:
    """Types of the fields :func:`app.features.features` reads; ``BadBody`` naming the field."""
    if d.__class__ is not dict:
        raise BadBody(f"impressions[{i}]: must be a JSON object")
    get = d.get
    for name in _STR_FIELDS:
        v = get(name)
        if v is not None and (v.__class__ is not str or not 1 <= len(v) <= 128):
            raise BadBody(f"impressions[{i}].{name}: must be a string of 1-128 characters")
    v = get("device")
    if v is not None and v not in _DEVICES:
        raise BadBody(f"impressions[{i}].device: must be mobile, desktop or tablet")
    v = get("price")
    if v is not None and (
        v.__class__ not in (int, float) or not math.isfinite(v) or v < 0
    ):
        raise BadBody(f"impressions[{i}].price: must be a finite number >= 0")
    v = get("event_time")
    if v is not None and v.__class__ not in (int, str):
        raise BadBody(f"impressions[{i}].event_time: must be integer ms since the epoch or an RFC 3339 string")
    for name in _MAPS:
        m = get(name)
        if m is None:
            continue
        if m.__class__ is not dict or len(m) > 64:
            raise BadBody(f"impressions[{i}].{name}: must be an object of at most 64 entries")
        for k, x in m.items():
            if x.__class__ not in (int, float) or not math.isfinite(x):
                raise BadBody(f"impressions[{i}].{name}.{k}: must be a finite number")


def parse_body(raw: bytes) -> tuple[list[dict], str | None]:
    """The impressions of a predict body and the model it names (if any); ``BadBody`` otherwise.

    >>> parse_body(b'{"device": "mobile"}')
    ([{'device': 'mobile'}], None)
    >>> parse_body(b'{"impressions": [{"price": 3}], "model": "ctr"}')
    ([{'price': 3}], 'ctr')
    >>> parse_body(b'[{"price": -1}]')
    Traceback (most recent call last):
    ...
    serving.routes.models.BadBody: impressions[0].price: must be a finite number >= 0
    """
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadBody(f"body is not JSON: {exc}") from None
    model = None
    if body.__class__ is dict and "impressions" in body:
        model = body.get("model")
        if model is not None and (model.__class__ is not str or not model):
            raise BadBody("model: must be a non-empty string")
        body = body["impressions"]
        if body.__class__ is not list:
            raise BadBody("impressions: must be a list")
    rows = body if body.__class__ is list else [body]
    if not rows:
        raise BadBody("no impressions: give one object or a non-empty list")
    if len(rows) > MAX_BATCH:
        raise BadBody(f"at most {MAX_BATCH} impressions per request (got {len(rows)})")
    for i, d in enumerate(rows):
        _check_impression(d, i)
    return rows, model


def _registry(request: Request) -> ModelRegistry | None:
    return getattr(request.app.state, "models", None)


def _score(predict_one, active, rows: list[dict]) -> list[dict[str, float]]:
    return [{"p_click": predict_one(active, d)} for d in rows]


@router.post(
    "/v1/predict",
    summary="click probability of one or many impressions, with the model version that gave it",
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _BODY_SCHEMA}}}},
    responses={422: {"description": "bad body"}, 404: {"description": "unknown model"},
               503: {"description": "no model active yet"}},
)  # fmt: skip
async def predict(
    request: Request,
    model: Annotated[str | None, Query(min_length=1, max_length=200, description="model name")] = None,
) -> OrjsonResponse:
    try:
        rows, named = parse_body(await request.body())
    except BadBody as exc:
        return OrjsonResponse({"detail": str(exc)}, status_code=422)
    name = model or named
    registry = _registry(request)
    if registry is None:
        raise HTTPException(503, "no model registry in this process (set TRIBUTARY_MODEL_HMAC_KEY)")
    active = registry.active(name)  # read once: a swap meanwhile does not affect this request
    if active is None:
        models = registry.active_models()
        if name is not None and models:
            raise HTTPException(404, f"unknown model {name!r}; active: {sorted(models)}")
        if models:
            raise HTTPException(422, f"several models are active: name one with ?model= ({sorted(models)})")
        what = f"model {name!r}" if name else "model"
        raise HTTPException(503, f"no {what} active yet: waiting for a verified snapshot on {registry.topic}",
                            headers={"Retry-After": "1"})  # fmt: skip
    if len(rows) <= INLINE_BATCH:
        preds = _score(registry.predict_one, active, rows)
    else:
        preds = await run_in_threadpool(_score, registry.predict_one, active, rows)
    return OrjsonResponse({"model": active.name, "model_version": active.version, "predictions": preds})


@router.get("/v1/models", summary="active model per name (version, kind, trained-until watermark, metrics) and history")
def list_models(request: Request) -> OrjsonResponse:
    registry = _registry(request)
    if registry is None:
        return OrjsonResponse({"models": {}, "detail": "no model registry in this process"})
    return OrjsonResponse(registry.describe())


class Activate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: StrictInt = Field(ge=1, description="a version still in the model's history")


@router.post("/v1/models/{name}/activate", summary="roll back or forward to a version (admin)")
def activate(
    request: Request, _: Admin, body: Activate,
    name: Annotated[str, Path(min_length=1, max_length=200)],
) -> OrjsonResponse:  # fmt: skip
    registry = _registry(request)
    if registry is None:
        raise HTTPException(503, "no model registry in this process")
    try:
        act = registry.activate(name, body.version)
    except UnknownModel as exc:
        raise HTTPException(404, str(exc)) from None
    return OrjsonResponse({
        "model": name, "model_version": act.version, "kind": act.entry.header.kind, "activated_at": act.activated_at,
        "pinned": registry.pinned(name),
    })  # fmt: skip
