"""End to end in headless Chromium: sign in, overview, date range, station page, CSV export,
and a "you said, we did" note that a kiosk stand-in receives over a real Mosquitto.

The fleet server runs as its own process (``palaute-server serve``) on SQLite with a
private Mosquitto; answers reach it the way kiosks send them (event batches over
MQTT, through the ingest). What a real fleet accumulates over weeks and is not
sent over MQTT here is written straight into the registry: station names,
opening hours (the station config) and the kiosks' online/offline history.

A real simulated kiosk (``palaute-kiosk --simulate``) and a paho subscriber both receive the note.
Uses Debian's chromium (/usr/bin/chromium) through the pip ``playwright`` package;
screenshots go to artifacts/screenshots/, and to docs/screenshots/ for the README when
PALAUTE_UPDATE_DOC_SCREENSHOTS=1.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

import httpx
import pytest
import uuid6

from fleet_server.auth.service import add_user, create_token
from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.devtools.demo import SAMPLE_STATIONS
from fleet_server.devtools.local_broker import free_port
from fleet_server.models import Device, DevicePresence, Station
from fleet_server.results.figures import LOCAL_TZ, today_local
from palaute_wire import contract as c
from tests.support.browser_support import launch, shot
from tests.support.mqtt_probe import Probe
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.broker]

PASSWORD = "a long coordinator password"
MIXES = ((5, 10, 40, 45), (10, 15, 40, 35), (4, 8, 38, 50), (15, 20, 35, 30),
         (6, 10, 34, 50), (8, 12, 45, 35), (20, 25, 30, 25), (5, 10, 35, 50))
WRONG = ("waiting-time", "staff-attitude", "information", "premises", "something-else")
OPEN_DAYS = {d: ("08:00", "16:00") for d in ("mon", "tue", "wed", "thu", "fri")}




def _prepare_registry(db_url: str) -> str:
    """Stations with names and opening hours, kiosks with a month of on/off history, a coordinator."""
    from fleet_server.fleet.remote_config import save_settings

    engine = make_engine(db_url)
    migrate(engine)
    factory = make_session_factory(engine)
    now = datetime.now(UTC)
    with factory() as s:
        for sid, name in SAMPLE_STATIONS:
            s.add(Station(id=sid, name=name))
            s.add(Device(id=f"{sid}-1", station_id=sid, state="active", online=False))
        s.flush()
        for sid, _ in SAMPLE_STATIONS:
            save_settings(s, sid, {"opening_hours": {"timezone": "Europe/Helsinki", "days": OPEN_DAYS}}, by="e2e")
        # Kiosks switched on 07:00-17:00 local each day; Lohtaja's was dead for three days last week.
        for day_back in range(35, -1, -1):
            day = today_local() - timedelta(days=day_back)
            on = datetime.combine(day, dtime(7), LOCAL_TZ).astimezone(UTC)
            off = datetime.combine(day, dtime(17), LOCAL_TZ).astimezone(UTC)
            for sid, _ in SAMPLE_STATIONS:
                if sid == "lohtaja" and 4 <= day_back <= 6:
                    continue
                if on < now:
                    s.add(DevicePresence(device_id=f"{sid}-1", at=on, online=True))
                if off < now:
                    s.add(DevicePresence(device_id=f"{sid}-1", at=off, online=False))
        add_user(s, "coordinator", "coordinator", PASSWORD)
        token = create_token(s, "e2e-poller", "coordinator").token
        s.commit()
    engine.dispose()
    return token


def _answers(station_index: int, sid: str, rng: random.Random) -> list[c.FeedbackEvent]:
    """About a month of answers in opening hours; Ullava gets only three (too few to show)."""
    events: list[c.FeedbackEvent] = []
    seq = 0
    now = datetime.now(UTC)
    per_day = 3 if sid == "ullava" else 18 + 4 * station_index
    for day_back in range(29, -1, -1):
        day = today_local() - timedelta(days=day_back)
        if day.weekday() >= 5 or (sid == "ullava" and day_back > 2):
            continue
        if sid == "lohtaja" and 4 <= day_back <= 6:
            continue  # the dead kiosk heard nothing
        n = 1 if sid == "ullava" else rng.randint(per_day // 2, per_day)
        for _ in range(n):
            local = datetime.combine(day, dtime(8), LOCAL_TZ) + timedelta(minutes=rng.randrange(8 * 60))
            ts = local.astimezone(UTC)
            if ts > now:
                continue
            value = rng.choices((1, 2, 3, 4), weights=MIXES[station_index])[0]
            seq += 1
            smiley = c.FeedbackEvent(event_id=uuid6.uuid7(), station_id=sid, device_id=f"{sid}-1", kind="smiley",
                                     value=value, question_id="visit", lang="fi", ts=ts, seq=seq, clock_synced=True,
                                     flags=("burst",) if rng.random() < 0.02 else ())
            events.append(smiley)
            if rng.random() < 0.4:
                seq += 1
                events.append(c.FeedbackEvent(
                    event_id=uuid6.uuid7(), station_id=sid, device_id=f"{sid}-1", kind="followup",
                    value=rng.choice(WRONG), question_id="what-went-wrong" if value <= 2 else "what-went-well",
                    lang="fi", ts=ts + timedelta(seconds=6), seq=seq, clock_synced=True, answer_to=smiley.event_id))
    return events


@pytest.fixture
def server(broker, tmp_path, processes):
    db_url = f"sqlite:///{tmp_path / 'palaute.db'}"
    token = _prepare_registry(db_url)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PALAUTE_")}
    env.update(PALAUTE_DATABASE_URL=db_url, PALAUTE_MQTT_URL=broker.url, PALAUTE_HTTP_PORT=str(port),
               PALAUTE_MQTT_CLIENT_ID="e2e-dashboard", PALAUTE_LOG_LEVEL="warning",
               PALAUTE_SESSION_SECRET="e2e-" + "x" * 40)
    proc = processes.start([sys.executable, "-m", "fleet_server.cli", "serve"], env=env, log=tmp_path / "server.log")
    base = f"http://127.0.0.1:{port}"

    def healthy():
        assert proc.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
        try:
            return httpx.get(f"{base}/healthz", timeout=1).json().get("mqtt") == "connected"
        except httpx.HTTPError:
            return False

    wait_until(healthy, 30, "the fleet server")
    return base, token


def _send_answers(broker, base: str, token: str) -> dict[str, int]:
    rng = random.Random(2026)
    expected: dict[str, int] = {}
    with Probe(broker.port, client_id="e2e-kiosks") as kiosks:
        assert kiosks.connect()
        for i, (sid, _) in enumerate(SAMPLE_STATIONS):
            answers = _answers(i, sid, rng)
            expected[sid] = sum(1 for e in answers if e.kind == "smiley")
            for start in range(0, len(answers), c.MAX_BATCH_EVENTS):
                batch = c.EventBatch(station_id=sid, device_id=f"{sid}-1", sent_at=datetime.now(UTC),
                                     events=tuple(answers[start:start + c.MAX_BATCH_EVENTS]))
                kiosks.publish(c.topic(sid, f"{sid}-1", "events"), c.encode(batch))
            status = c.StatusHeartbeat(station_id=sid, device_id=f"{sid}-1", online=True,
                                       sent_at=datetime.now(UTC))
            kiosks.publish(c.topic(sid, f"{sid}-1", "status"), c.encode(status), retain=True)
    headers = {"Authorization": f"Bearer {token}"}
    big = {sid: n for sid, n in expected.items() if n >= 5}

    def all_counted():
        rows = httpx.get(f"{base}/api/v1/results/overview?range=30d", headers=headers, timeout=5).json()
        return {r["station_id"]: r["all_presses"] for r in rows if r["station_id"] in big} == big

    wait_until(all_counted, 60, "the ingest to count every answer")
    return expected


def _start_kiosk(processes, broker, workdir: Path) -> tuple[subprocess.Popen, Path]:
    """The real kiosk code (palaute-kiosk --simulate) as kalvia-1, pressing now and then."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "kiosk.toml"
    config.write_text("\n".join([
        "[device]", 'station_id = "kalvia"', 'device_id = "kalvia-1"', "",
        "[broker]", f'url = "{broker.url}"', "heartbeat_s = 5", "",
        "[outbox]", f'path = "{workdir / "outbox.db"}"', "",
        "[state]", f'dir = "{workdir / "state"}"', "",
        "[simulate]", "presses_per_minute = 2", "",
    ]) + "\n")
    proc = processes.start([sys.executable, "-m", "kiosk.cli", "--config", str(config), "--simulate"],
                           log=workdir / "kiosk.log")
    return proc, workdir / "state" / "station-config.json"


def test_coordinator_journey_in_a_real_browser(server, broker, tmp_path, processes):
    from playwright.sync_api import expect, sync_playwright

    base, token = server
    _send_answers(broker, base, token)
    real_kiosk, kiosk_config_file = _start_kiosk(processes, broker, tmp_path / "kiosk")
    kiosk = Probe(broker.port, client_id="kalvia-1-standin")
    assert kiosk.connect()
    config_topic = c.topic("kalvia", "kalvia-1", "config")
    kiosk.subscribe(config_topic)
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True,
                                          locale="en-GB", timezone_id="Europe/Helsinki")
            page = context.new_page()
            page.set_default_timeout(15_000)

            # Anonymous: sent to the sign-in page.
            page.goto(f"{base}/")
            expect(page).to_have_url(f"{base}/login?next=/")
            shot(page, "dashboard-login")
            page.fill("input[name=username]", "coordinator")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")

            # Overview, 7 days by default; then 30 days.
            expect(page.locator("table.overview")).to_be_visible()
            expect(page.locator("[data-testid=period-label]")).to_have_text("7 days")
            expect(page.locator("tr[data-station]")).to_have_count(len(SAMPLE_STATIONS))
            expect(page.locator("tr[data-station=ullava]")).to_contain_text("too few responses")
            page.click('a.preset[data-range="30d"]')
            expect(page.locator("[data-testid=period-label]")).to_have_text("30 days")
            assert "range=30d" in page.url
            page.click("a[data-sort=satisfaction]")
            expect(page.locator("th[aria-sort]")).to_contain_text("Satisfaction")
            shot(page, "dashboard-overview")

            # A station page: charts drawn by the vendored Chart.js, heatmap, follow-ups.
            page.click("tr[data-station=lohtaja] a")
            expect(page.locator("h1")).to_have_text("Lohtaja health station")
            expect(page.locator("[data-testid=heatmap]")).to_be_visible()
            page.wait_for_function("() => window.Chart && Chart.getChart(document.getElementById('trend'))")
            assert page.evaluate("() => Chart.getChart(document.getElementById('trend')).data.labels.length") == 30
            assert page.locator("[data-testid=heatmap] td.closed").count() > 0
            shot(page, "dashboard-station")

            # Custom range through the form.
            first = (today_local() - timedelta(days=13)).isoformat()
            page.fill("input[name=from]", first)
            page.fill("input[name=to]", today_local().isoformat())
            page.click("form.range button[type=submit]")
            expect(page.locator("[data-testid=period-label]")).to_contain_text(" – ")
            assert "range=custom" in page.url

            # Comparison.
            page.goto(f"{base}/compare?range=30d&station=kokkola&station=kalvia&station=alaveteli")
            page.wait_for_function("() => window.Chart && Chart.getChart(document.getElementById('cmp-trend'))")
            shot(page, "dashboard-compare")

            # CSV export of daily figures.
            page.goto(f"{base}/exports?range=7d")
            with page.expect_download() as download_info:
                page.click("[data-testid=export-daily-csv]")
            download = download_info.value
            saved = tmp_path / download.suggested_filename
            download.save_as(saved)
            lines = saved.read_text(encoding="utf-8-sig").splitlines()
            assert lines[0].startswith("station_id,station,date,responses")
            assert len(lines) == 1 + 7 * len(SAMPLE_STATIONS)
            assert any(line.startswith("ullava,") and "too few responses" in line for line in lines)

            # "You said, we did": publish a note; the kiosk stand-in receives it on its config topic.
            page.goto(f"{base}/notes")
            page.select_option("select[name=station_id]", "kalvia")
            page.fill("textarea[name=text_fi]", "Kerroitte, että odotusajat olivat pitkiä – lisäsimme iltapäivään avoimen vastaanottotunnin.")
            page.fill("textarea[name=text_sv]", "Ni berättade att väntetiderna var långa – vi lade till en öppen mottagningstimme på eftermiddagen.")
            page.fill("textarea[name=text_en]", "You told us waiting times were long – we added an afternoon walk-in hour.")
            page.fill("input[name=ends]", (today_local() + timedelta(days=30)).isoformat())
            page.click("[data-testid=note-form] button[type=submit]")
            expect(page.locator("[data-testid=notes-message]")).to_contain_text("published to 1 kiosk(s)")
            deadline = time.monotonic() + 10
            while True:
                msg = kiosk.expect(config_topic, timeout=max(0.1, deadline - time.monotonic()))
                _, config = c.decode(msg.topic, msg.payload)
                if config.notes:
                    break
            assert config.notes[0].text["en"] == "You told us waiting times were long – we added an afternoon walk-in hour."
            # The real kiosk applied it too: its persisted station config holds the note.
            def kiosk_has_note():
                assert real_kiosk.poll() is None, (tmp_path / "kiosk" / "kiosk.log").read_text()[-2000:]
                if not kiosk_config_file.exists():
                    return False
                applied = c.StationConfig.model_validate_json(kiosk_config_file.read_bytes())
                return bool(applied.notes) and applied.notes[0].text["fi"].startswith("Kerroitte")
            wait_until(kiosk_has_note, 20, "the simulated kiosk to apply the note")
            expect(page.locator("table[data-testid=notes]")).to_contain_text("on kiosks now")
            shot(page, "dashboard-notes")

            # The API documentation renders from the server's own copy of Swagger UI (no CDN).
            page.goto(f"{base}/docs")
            expect(page.locator(".swagger-ui .opblock-summary-path").filter(has_text="/api/v1/results/overview")).to_be_visible()

            # The same overview on a tablet in portrait.
            tablet = browser.new_context(viewport={"width": 820, "height": 1180}, storage_state=context.storage_state())
            tpage = tablet.new_page()
            tpage.goto(f"{base}/stations/kalvia?range=30d")
            tpage.wait_for_function("() => window.Chart && Chart.getChart(document.getElementById('trend'))")
            shot(tpage, "dashboard-station-tablet")
            tablet.close()
        finally:
            browser.close()
            kiosk.close()
