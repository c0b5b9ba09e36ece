"""/api/v1/dead-letters: messages the ingest refused, with the reason and the raw payload."""

from __future__ import annotations

import base64
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status

from fleet_server.api.deps import ItUser, SessionDep
from fleet_server.api.schemas import DeadLetterOut, DeadLetterPage
from fleet_server.models import DeadLetter
from fleet_server.results import queries

router = APIRouter(prefix="/dead-letters", tags=["dead letters"])

MAX_OFFSET = 2**31 - 1
"""Larger offsets are refused (422): the databases cannot take them (SQLite raised OverflowError)."""

DEFAULT_MAX_PAYLOAD_CHARS = 4096
"""Listing pages show this much of each payload; GET /dead-letters/{id} shows it whole."""


def _out(letter: DeadLetter, max_chars: int | None) -> DeadLetterOut:
    raw = letter.payload
    encoding: Literal["utf-8", "base64"]
    try:
        text, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(raw).decode("ascii"), "base64"
    truncated = len(raw) < letter.size  # the ingest stored only the first MAX_STORED_PAYLOAD bytes
    if max_chars is not None and len(text) > max_chars:
        text, truncated = text[:max_chars], True
    return DeadLetterOut(
        id=letter.id,
        received_at=letter.received_at,
        topic=letter.topic,
        reason=letter.reason,
        detail=letter.detail,
        size=letter.size,
        payload_encoding=encoding,
        payload=text,
        payload_truncated=truncated,
        count=letter.count,
        last_seen_at=letter.last_seen_at,
        stored_payload=letter.stored_payload.decode("utf-8", "replace") if letter.stored_payload else None,
    )


@router.get("", response_model=DeadLetterPage, summary="Refused messages, newest first")
def list_dead_letters(
    session: SessionDep,
    principal: ItUser,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    reason: Annotated[str | None, Query(description="only this reason code")] = None,
    max_payload_chars: Annotated[int, Query(ge=0, le=1_000_000)] = DEFAULT_MAX_PAYLOAD_CHARS,
) -> DeadLetterPage:
    total, page = queries.list_dead_letters(session, limit=limit, offset=offset, reason=reason)
    return DeadLetterPage(
        total=total, limit=limit, offset=offset, items=[_out(d, max_payload_chars) for d in page]
    )


@router.get("/{letter_id}", response_model=DeadLetterOut, responses={404: {"description": "no such dead letter"}}, summary="One refused message with its whole payload")
def get_dead_letter(session: SessionDep, principal: ItUser, letter_id: Annotated[int, Path(ge=1, le=MAX_OFFSET)]) -> DeadLetterOut:
    letter = session.get(DeadLetter, letter_id)
    if letter is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dead letter {letter_id}")
    return _out(letter, None)
