"""When the fleet loop checks for sequence gaps: soon after a start and after the broker came back."""

from __future__ import annotations

import time

from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.core.settings import load_settings
from fleet_server.fleet.loop import FleetLoop, GapSchedule


def test_gap_checks_run_soon_after_start_and_after_a_reconnect_then_fall_back_to_the_interval():
    s = GapSchedule(interval_s=300, soon_s=15)
    assert s.due(0.0)                      # the first pass after a start
    s.checked(0.0, pending=False)
    assert s.next_at == 15                 # once more soon: the kiosks have reported by then
    s.checked(15.0, pending=False)
    assert s.next_at == 315                # nothing open: the normal interval
    s.connection_back(100.0)               # the broker came back (it may have lost messages)
    assert s.next_at == 115
    s.checked(115.0, pending=True)         # gaps found: follow them closely ...
    assert s.next_at == 130
    s.checked(130.0, pending=True)
    assert s.next_at == 145
    s.checked(145.0, pending=False)        # ... until they are closed
    assert s.next_at == 445


class CountingPublisher:
    """Only what the loop reads here: how often the broker connection was made."""

    def __init__(self) -> None:
        self.connections = 1


def test_the_loop_notices_the_broker_connection_coming_back(tmp_path):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    migrate(url)
    engine = make_engine(url)
    settings = load_settings(environ={}, database_url=url, gap_check_interval_s=3600, gap_check_soon_s=20)
    publisher = CountingPublisher()
    loop = FleetLoop(settings, make_session_factory(engine), publisher)
    assert loop.gap_pass_if_due()          # at start
    loop.gap_schedule.checked(time.monotonic(), pending=False)  # as if the soon check had been done too
    assert not loop.gap_pass_if_due()
    publisher.connections += 1             # reconnected
    before = time.monotonic()
    assert not loop.gap_pass_if_due()
    assert loop.gap_schedule.next_at <= before + 20.5, "the next check must come soon, not in an hour"
    engine.dispose()
