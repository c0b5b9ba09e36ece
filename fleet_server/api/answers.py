"""POST /api/v1/answers: a phone or SMS survey system delivers its answers (token role ``import``).

The body is ``{"v": 1, "answers": [...]}`` with 1..500 answers, each
``{"answer_id": UUID, "station_id", "channel": "phone"|"sms", "kind": "smiley"|"followup",
"value", "question_id", "lang", "ts", "answer_to"?, "survey_version"?}`` (docs/api.md). Checked by the
same contract as a kiosk's MQTT events; refusals are dead-lettered with the same reasons.

Answers: 200 when every answer is stored or was stored before; 422 when some were refused (the
valid ones of the same request ARE stored: resend only the refused ones, or all -- a resend is
harmless); 400/413 when the body itself is unusable (nothing stored); 401/403 without an import token.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse

from fleet_server.api.deps import SessionDep
from fleet_server.auth.deps import api_principal
from fleet_server.auth.roles import Principal
from fleet_server.channels.answers import (
    IMPORT_CHANNELS,
    IMPORT_TOPIC,
    ChannelRefused,
    parse_import_body,
    store_answers,
)

router = APIRouter(tags=["answers"])


def _importer(principal: Annotated[Principal, Depends(api_principal)]) -> Principal:
    if not principal.may_import_answers:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"your role ({principal.role}) may not deliver answers: use a token of role import")
    return principal


Importer = Annotated[Principal, Depends(_importer)]


@router.post(
    "/answers",
    summary="Deliver answers from a phone or SMS survey (idempotent on answer_id)",
    responses={
        200: {"description": "every answer stored, or stored before"},
        400: {"description": "the body is not {\"v\": 1, \"answers\": [...]} (nothing stored)"},
        413: {"description": "the body is larger than 256 KiB (nothing stored)"},
        422: {"description": "some answers refused, each with its reason; the others are stored"},
    },
)
async def post_answers(request: Request, db: SessionDep, _principal: Importer) -> JSONResponse:
    body = await request.body()
    try:
        items = parse_import_body(db, body)
    except ChannelRefused as exc:
        code = status.HTTP_413_CONTENT_TOO_LARGE if exc.reason == "oversize" else status.HTTP_400_BAD_REQUEST
        return JSONResponse({"detail": f"{exc.reason}: {exc.detail}", "reason": exc.reason}, status_code=code)
    results = store_answers(db, items, channels=IMPORT_CHANNELS, topic=IMPORT_TOPIC)
    db.commit()
    counts = {k: sum(r.outcome == k for r in results) for k in ("stored", "duplicate", "refused")}
    payload: dict[str, Any] = {
        "stored": counts["stored"], "duplicates": counts["duplicate"], "refused": counts["refused"],
        "results": [{k: v for k, v in asdict(r).items() if v is not None} for r in results],
    }
    if counts["refused"]:
        first = next(r for r in results if r.outcome == "refused")
        payload["detail"] = (f"{counts['refused']} of {len(results)} answers refused (the others are stored); "
                             f"first: answers[{first.index}]: {first.reason}: {first.detail}")
        return JSONResponse(payload, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
    return JSONResponse(payload)
