"""Which event seqs are implausibly far above what a kiosk has made: dead-lettered, not stored.

Why: ``seq`` is a per-kiosk counter that grows by one per answer, and the server
counts every seq it has not seen as a missing answer (fleet_server.fleet.gaps).
One event with seq 999,999 from a kiosk at seq 7,508 (a bug, a corrupted outbox,
a crafted message from the kiosk's account) would otherwise raise a lasting
"992,491 answers missing" that no resend can ever fill, and hide real gaps below it.

The rule: the ceiling of a kiosk is the highest of its highest stored seq and the
``last_seq`` it reported in a status (stored, or in the same batch). An event
with seq > ceiling + SEQ_JUMP_LIMIT is dead-lettered ``seq_jump`` with the whole
message (the rest of the message's events are stored as usual). A kiosk with no
ceiling yet (nothing stored, no status) is not judged. SEQ_JUMP_LIMIT is larger than
a kiosk's whole outbox (100,000 events by default), so a kiosk back from a long
outage is never refused: it sends its status (with last_seq) before its queue.
A replaced SD card starts a new outbox epoch at seq 1, which is below, not above.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import func, select

from fleet_server.models import Device, FeedbackEvent
from palaute_wire import contract

REASON_SEQ_JUMP = "seq_jump"

SEQ_JUMP_LIMIT = 200_000
"""Largest plausible step above a kiosk's ceiling (twice a default outbox)."""


def stored_max_seq() -> Any:
    """A device row's highest stored seq, as a correlated subquery of ``devices`` (one index probe each on
    ``(device_id, seq)``): the store reads it with the device itself, in the same query."""
    return (select(func.max(FeedbackEvent.seq)).where(FeedbackEvent.device_id == Device.id)
            .correlate(Device).scalar_subquery())


def seq_ceilings(
    payloads: Iterable[Any], stored: Mapping[str, int | None]
) -> dict[str, int]:
    """Ceiling per kiosk that sends events in this batch (absent: no ceiling known yet).

    ``payloads``: statuses and events messages (``contract.EventBatch`` or the SQLite ingest's
    ``EventParams``: anything with a ``device_id`` that is not a status). ``stored``: per device,
    the highest of its stored ``last_seq`` and its highest stored event seq (None: neither), as
    the store read them with the device rows."""
    payloads = list(payloads)
    senders = {p.device_id for p in payloads if not isinstance(p, contract.StatusHeartbeat)}
    if not senders:
        return {}
    ceilings: dict[str, int] = {}

    def raise_to(device_id: str, seq: int | None) -> None:
        if seq is not None and device_id in senders:
            ceilings[device_id] = max(ceilings.get(device_id, 0), seq)

    for device_id in senders:
        raise_to(device_id, stored.get(device_id))
    for p in payloads:
        if isinstance(p, contract.StatusHeartbeat):
            raise_to(p.device_id, p.last_seq)
    return ceilings


def below_jump(ceilings: dict[str, int], device_id: str, seq: int) -> bool:
    """``seq`` (e.g. a message's highest) is not refused as a jump for this kiosk."""
    ceiling = ceilings.get(device_id)
    return ceiling is None or seq <= ceiling + SEQ_JUMP_LIMIT


def split_jumps(batch: contract.EventBatch, ceilings: dict[str, int]) -> tuple[list[contract.FeedbackEvent], str | None]:
    """(the events to store, why the others are refused or None)."""
    ceiling = ceilings.get(batch.device_id)
    if ceiling is None:
        return list(batch.events), None
    keep = [e for e in batch.events if e.seq <= ceiling + SEQ_JUMP_LIMIT]
    if len(keep) == len(batch.events):
        return keep, None
    jumped = sorted(e.seq for e in batch.events if e.seq > ceiling + SEQ_JUMP_LIMIT)
    return keep, (f"{len(jumped)} event(s) with seq {jumped[0]}" + (f"..{jumped[-1]}" if len(jumped) > 1 else "")
                  + f" far above the kiosk's highest seq {ceiling} (limit +{SEQ_JUMP_LIMIT}); not stored")
