"""Per-channel rollups: every channel's hourly figures add up to the all-channel figures, exactly."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from datetime import timedelta

from sqlalchemy import select

from fleet_server.channels.answers import IMPORT_CHANNELS, store_answers
from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.ingest.consumer import handle_batch
from fleet_server.models import ChannelHour, FeedbackEvent, StationHour
from fleet_server.results.rollups import COUNT_COLUMNS, flag_kind, hour_of, rebuild
from tests.support.auth_helpers import ensure_station
from tests.support.server_factories import T0, event, events_message


def _snapshot(session):
    per_channel = {(r.station_id, r.hour, r.channel): tuple(getattr(r, c) for c in COUNT_COLUMNS)
                   for r in session.scalars(select(ChannelHour))}
    all_channels = {(r.station_id, r.hour): tuple(getattr(r, c) for c in COUNT_COLUMNS)
                    for r in session.scalars(select(StationHour))}
    return per_channel, all_channels


def _fresh(session):
    cells: dict[tuple, Counter] = {}
    for e in session.scalars(select(FeedbackEvent).where(FeedbackEvent.kind == "smiley")):
        key = (e.station_id, hour_of(e.ts), e.channel)
        cells.setdefault(key, Counter())[f"{flag_kind(e.burst, e.out_of_hours)}{e.value}"] += 1
    return {k: tuple(v[c] for c in COUNT_COLUMNS) for k, v in cells.items()}


def test_channel_figures_add_up_to_the_all_channel_figures_and_equal_a_fresh_count(sessions):
    rng = random.Random(16)
    with sessions() as s:
        ensure_station(s, "kalvia")
        ensure_station(s, "lohtaja")
        s.commit()
    kiosk = []
    for seq in range(1, 121):
        flags = rng.choice([(), (), ("burst",), ("out_of_hours",)])
        kiosk.append(event(seq=seq, value=rng.randint(1, 4), ts=T0 + timedelta(minutes=7 * seq), flags=flags))
    with sessions() as s:
        handle_batch(s, [events_message(kiosk[i:i + 40]) for i in range(0, len(kiosk), 40)])
        s.commit()
    imported = [{"answer_id": str(uuid.uuid4()), "station_id": rng.choice(["kalvia", "lohtaja"]),
                 "channel": rng.choice(IMPORT_CHANNELS), "value": rng.randint(1, 4), "lang": "fi",
                 "ts": (T0 + timedelta(minutes=rng.randrange(900))).isoformat()} for _ in range(80)]
    web = [{"answer_id": str(uuid.uuid4()), "station_id": "kalvia", "channel": "web", "value": rng.randint(1, 4),
            "lang": "sv", "ts": (T0 + timedelta(minutes=rng.randrange(900))).isoformat()} for _ in range(60)]
    with sessions() as s:
        store_answers(s, imported, channels=IMPORT_CHANNELS, topic="test")
        store_answers(s, web, channels=("web",), topic="test")
        store_answers(s, imported[:30], channels=IMPORT_CHANNELS, topic="test")  # resent: counted once
        s.commit()
    with sessions() as s:
        per_channel, all_channels = _snapshot(s)
        assert {ch for _, _, ch in per_channel} == {"kiosk", "phone", "sms", "web"}
        summed: dict[tuple, list[int]] = {}
        for (station, hour, _), counts in per_channel.items():
            cell = summed.setdefault((station, hour), [0] * len(COUNT_COLUMNS))
            for i, n in enumerate(counts):
                cell[i] += n
        assert {k: tuple(v) for k, v in summed.items()} == all_channels
        assert {k: v for k, v in per_channel.items() if any(v)} == _fresh(s)
        assert sum(sum(v) for v in all_channels.values()) == 120 + 80 + 60
        rebuild(s)
        assert _snapshot(s) == (per_channel, all_channels)


def test_the_migration_fills_channel_rollups_from_the_answers_already_stored(db_url):
    """Answers stored, then down to the revision before channel rollups and up again: the table is
    made anew and filled from the answers, equal to what the ingest had kept."""
    from alembic import command

    from fleet_server.core.db import alembic_config

    engine = make_engine(db_url)
    migrate(engine)
    try:
        with make_session_factory(engine)() as s:
            handle_batch(s, [events_message([event(seq=n, value=1 + n % 4, ts=T0 + timedelta(minutes=25 * n),
                                                   flags=("burst",) if n % 5 == 0 else ())
                                             for n in range(1, 30)])])
            store_answers(s, [{"answer_id": str(uuid.uuid4()), "station_id": "kalvia", "channel": "phone",
                               "value": 2, "lang": "fi", "ts": (T0 + timedelta(hours=h, minutes=9)).isoformat()}
                              for h in range(5)], channels=IMPORT_CHANNELS, topic="test")
            s.commit()
            expected = _snapshot(s)[0]
        assert {ch for _, _, ch in expected} == {"kiosk", "phone"}
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":  # as core.db.migrate does: batch mode rebuilds tables
                conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
                conn.commit()
            with conn.begin():
                cfg = alembic_config(conn)
                command.downgrade(cfg, "1800_partition_answers")
                command.upgrade(cfg, "head")
        with make_session_factory(engine)() as s:
            assert _snapshot(s)[0] == expected
    finally:
        engine.dispose()
