"""The consumer's lanes: a live press overtakes a queued backlog; transactions stay bounded."""

from __future__ import annotations

import threading

from fleet_server.ingest.lanes import LIVE_TX_EVENTS, IngestLanes
from fleet_server.ingest.store import TX_MAX_EVENTS, count_events
from tests.support.server_factories import event, events_message, status_message


def _backlog(messages: int, device: str = "kalvia-2"):
    return [events_message([event(device=device) for _ in range(100)], device=device) for _ in range(messages)]


def _take(lanes: IngestLanes, max_messages: int = 500):
    return lanes.take(max_messages, TX_MAX_EVENTS, wait_s=0, linger_s=0)


def test_a_live_press_is_taken_before_a_queued_backlog():
    lanes = IngestLanes()
    backlog = _backlog(80)  # 8,000 queued answers from another kiosk, already waiting
    for m in backlog:
        lanes.put(m)
    press, heartbeat = events_message([event()]), status_message()
    lanes.put(press)
    lanes.put(heartbeat)
    first = _take(lanes)
    assert first[:2] == [press, heartbeat]
    assert first[2:] == backlog[: len(first) - 2]  # the rest of the transaction is catch-up, in order


def test_a_transaction_holds_at_most_tx_max_events_and_takes_everything_once():
    lanes = IngestLanes()
    backlog = _backlog(2 * TX_MAX_EVENTS // 100 + 7)
    for m in backlog:
        lanes.put(m)
    taken = []
    while batch := _take(lanes):
        assert sum(count_events(m.payload) for m in batch) <= TX_MAX_EVENTS
        taken.extend(batch)
    assert taken == backlog
    assert lanes.qsize() == 0


def test_catch_up_keeps_moving_while_presses_keep_coming():
    lanes = IngestLanes()
    backlog = _backlog(3 * TX_MAX_EVENTS // 100)
    for m in backlog:
        lanes.put(m)
    drained = []
    while lanes.qsize():
        lanes.put(events_message([event()]))
        batch = _take(lanes)
        drained.append(sum(1 for m in batch if m in backlog))
        assert len(drained) <= len(backlog)
    assert sum(drained) == len(backlog)
    assert min(drained[:-2]) >= LIVE_TX_EVENTS // 100 - 1  # each transaction fills up with catch-up


def test_a_transaction_with_a_live_press_stays_short():
    lanes = IngestLanes()
    for m in _backlog(TX_MAX_EVENTS // 100):
        lanes.put(m)
    press = events_message([event()])
    lanes.put(press)
    batch = _take(lanes)
    assert batch[0] == press
    assert sum(count_events(m.payload) for m in batch) <= LIVE_TX_EVENTS
    assert sum(count_events(m.payload) for m in _take(lanes)) == TX_MAX_EVENTS - 100 * (len(batch) - 1)  # the rest


def test_the_writer_waits_for_a_first_message_then_lingers_for_more():
    lanes = IngestLanes()
    assert lanes.take(10, TX_MAX_EVENTS, wait_s=0.01, linger_s=0) == []
    messages = [events_message([event()]) for _ in range(3)]
    threading.Timer(0.05, lambda: [lanes.put(m) for m in messages]).start()
    got = lanes.take(3, TX_MAX_EVENTS, wait_s=5, linger_s=5)  # returns as soon as the batch is full
    assert got == messages
