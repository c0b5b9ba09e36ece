"""Monthly reports by e-mail: subscribers get last month's report as a PDF once, from the 1st,
in their own language, through a real SMTP server (aiosmtpd), with the clock fixed; several
server processes' passes still send each one once; subscriptions from the page and the CLI."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, time, timedelta

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select
from typer.testing import CliRunner

from fleet_server.app import create_app
from fleet_server.cli import app as cli_app
from fleet_server.core.settings import load_settings
from fleet_server.fleet import report_mail
from fleet_server.fleet.loop import FleetLoop
from fleet_server.fleet.publisher import Publisher
from fleet_server.models import ReportDelivery, ReportSubscription
from fleet_server.results.figures import LOCAL_TZ
from tests.server.test_monthly_report import seed
from tests.support.auth_helpers import make_user, page_csrf, sign_in
from tests.support.pdf import pdf_text, pdf_to_png

SUBSCRIBED = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
FIRST_0559 = datetime.combine(datetime(2026, 12, 1).date(), time(5, 59), LOCAL_TZ)
FIRST_0600 = FIRST_0559 + timedelta(minutes=1)




@pytest.fixture
def sessions(sessions):
    seed(sessions)
    with sessions() as s, s.begin():
        report_mail.add_subscription(s, "hoitaja@kokkola.example", "fi", station_id="kalvia", created_by="t",
                                     now=SUBSCRIBED)
        report_mail.add_subscription(s, "chef@karleby.example", "sv", group_id="kokkola", created_by="t",
                                     now=SUBSCRIBED)
    return sessions


def mail_settings(controller, **over):
    return load_settings(environ={}, smtp_host="127.0.0.1", smtp_port=controller.port,
                         alert_email_from="palaute@soite.example", **over)


def _pdf(msg):
    (part,) = [p for p in msg.iter_attachments() if p.get_content_type() == "application/pdf"]
    return part.get_filename(), part.get_content()


def test_each_subscriber_gets_last_months_report_once_from_six_on_the_first(sessions, smtp, tmp_path):
    controller, box = smtp
    settings = mail_settings(controller)
    clock = {"now": FIRST_0559}
    loop = FleetLoop(settings, sessions, Publisher(settings), clock=lambda: clock["now"])
    assert loop.send_reports() == 0 and box.messages == []  # 05:59 on the 1st: not yet
    for minutes in (1, 30, 60 * 24 * 14):  # 06:00, 06:30, two weeks later: sent once
        clock["now"] = FIRST_0559 + timedelta(minutes=minutes)
        loop.send_reports()
    by_to = {m["To"]: m for m in box.messages}
    assert len(box.messages) == 2 and set(by_to) == {"hoitaja@kokkola.example", "chef@karleby.example"}

    fi = by_to["hoitaja@kokkola.example"]
    assert fi["Subject"] == "Kuukausiraportti: Kälviän terveysasema, marraskuu 2026"
    assert fi["From"] == "palaute@soite.example" and fi["Content-Language"] == "fi"
    assert "Vastauksia 60, tyytyväisyys 75\u00a0%" in fi.get_body(("plain",)).get_content()
    name, pdf = _pdf(fi)
    assert name == "palaute-station-kalvia-2026-11.pdf"
    text = pdf_text(pdf)
    assert "Kälviän terveysasema" in text and "marraskuu 2026" in text and "Lisäsimme iltavastaanoton" in text

    sv = by_to["chef@karleby.example"]
    assert sv["Subject"] == "Månadsrapport: Karleby, november 2026"
    name, pdf = _pdf(sv)
    text = pdf_text(pdf)
    assert "Karleby" in text and "för få svar" in text and "Ullava hälsostation" in text
    (png, *_rest) = pdf_to_png(pdf, tmp_path)
    image = Image.open(png).convert("RGB")
    assert abs(image.size[1] / image.size[0] - 297 / 210) < 0.01
    assert sum(1 for px in image.get_flattened_data() if px[2] > 150 and px[0] < 60) > 2000  # charts drawn

    with sessions() as s:
        rows = s.scalars(select(ReportDelivery)).all()
    assert sorted((r.month.isoformat(), r.attempts, r.delivered_at) for r in rows) == [
        ("2026-11-01", 1, FIRST_0600), ("2026-11-01", 1, FIRST_0600)]


def test_a_subscription_made_after_the_first_waits_for_the_next_month(sessions, smtp):
    controller, box = smtp
    settings = mail_settings(controller)
    with sessions() as s, s.begin():
        report_mail.add_subscription(s, "late@kokkola.example", "en", station_id="ullava", created_by="t",
                                     now=FIRST_0600 + timedelta(days=3))
    report_mail.run_once(sessions, settings, FIRST_0600 + timedelta(days=4))
    assert "late@kokkola.example" not in {m["To"] for m in box.messages}
    january = datetime.combine(datetime(2027, 1, 1).date(), time(6), LOCAL_TZ)
    report_mail.run_once(sessions, settings, january)
    (late,) = [m for m in box.messages if m["To"] == "late@kokkola.example"]
    assert late["Subject"] == "Monthly report: Ullava, December 2026"


def test_a_failed_sending_waits_its_backoff_and_is_then_sent_once(sessions, smtp):
    controller, box = smtp
    settings = mail_settings(controller, alert_retry_min_s=600)
    failures = {"left": 3}

    def flaky(settings, msg):
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionRefusedError("mail server down")
        report_mail.send_mail(settings, msg)

    for minute in range(0, 40, 5):
        report_mail.run_once(sessions, settings, FIRST_0600 + timedelta(minutes=minute), send=flaky)
    assert len(box.messages) == 2  # both sent in the end, once each
    with sessions() as s:
        rows = {r.subscription_id: r for r in s.scalars(select(ReportDelivery))}
    # 06:00 both fail (retry at 06:10); 06:10 the first fails again (retry after 20 min, at 06:30), the
    # second goes; 06:30 the first goes: nothing tried in between, nothing sent twice.
    assert [rows[i].attempts for i in sorted(rows)] == [3, 2]
    assert rows[min(rows)].delivered_at == FIRST_0600 + timedelta(minutes=30)
    assert all(r.last_error == "" and r.delivered_at for r in rows.values())


@pytest.mark.postgres
def test_passes_of_several_server_processes_send_each_report_once(postgres_url, smtp):
    from fleet_server.core.db import make_engine, make_session_factory, migrate

    controller, box = smtp
    settings = mail_settings(controller)
    migrate(postgres_url)
    engine = make_engine(postgres_url)
    factory = make_session_factory(engine)
    try:
        seed(factory)
        with factory() as s, s.begin():
            for i in range(4):
                report_mail.add_subscription(s, f"user{i}@soite.example", "fi", station_id="kalvia",
                                             created_by="t", now=SUBSCRIBED)
        passes = [threading.Thread(target=report_mail.run_once, args=(factory, settings, FIRST_0600))
                  for _ in range(4)]
        for t in passes:
            t.start()
        for t in passes:
            t.join(120)
        assert sorted(m["To"] for m in box.messages) == [f"user{i}@soite.example" for i in range(4)]
        with factory() as s:
            assert s.scalar(select(func.count()).select_from(ReportDelivery)) == 4
    finally:
        engine.dispose()


# ----------------------------------------------------------------- managing subscriptions


@pytest.fixture
def client(sqlite_url):
    settings = load_settings(environ={}, database_url=sqlite_url, mode="development")
    with TestClient(create_app(settings, start_ingest=False)) as c:
        seed(c.app.state.session_factory)
        yield c


def test_a_coordinator_subscribes_an_address_and_removes_it_on_the_reports_page(client):
    make_user(client.app.state.session_factory, "coord", "coordinator")
    sign_in(client, "coord")
    csrf = page_csrf(client.get("/reports").text)
    r = client.post("/reports/subscriptions", data={"csrf_token": csrf, "email": "johtaja@soite.example",
                                                    "language": "sv", "scope": "group:kokkola"})
    assert r.status_code == 200 and "Subscription saved" in r.text
    html = client.get("/reports").text
    (sub_id, row), = re.findall(r'<tr data-subscription="(\d+)">(.*?)</tr>', html, re.DOTALL)
    assert "johtaja@soite.example" in row and "Kokkola" in row and "Svenska" in row
    bad = client.post("/reports/subscriptions", data={"csrf_token": csrf, "email": "not an address",
                                                      "language": "fi", "scope": "station:kalvia"})
    assert bad.status_code == 400 and "is not an e-mail address" in bad.text
    assert client.post(f"/reports/subscriptions/{sub_id}/delete", data={"csrf_token": csrf}).status_code == 200
    with client.app.state.session_factory() as s:
        assert s.scalar(select(func.count()).select_from(ReportSubscription)) == 0


def test_staff_subscribe_to_their_own_station_only(client):
    make_user(client.app.state.session_factory, "nurse", "staff", "kalvia")
    with client.app.state.session_factory() as s, s.begin():
        other = report_mail.add_subscription(s, "x@soite.example", "fi", station_id="ullava", created_by="c").id
    sign_in(client, "nurse")
    page = client.get("/reports").text
    assert "x@soite.example" not in page  # another station's subscribers are not shown
    csrf = page_csrf(page)
    assert client.post("/reports/subscriptions", data={"csrf_token": csrf, "email": "a@soite.example",
                                                       "language": "fi", "scope": "station:ullava"}).status_code == 400
    assert client.post("/reports/subscriptions", data={"csrf_token": csrf, "email": "a@soite.example",
                                                       "language": "fi", "scope": "station:kalvia"}).status_code == 200
    assert client.post(f"/reports/subscriptions/{other}/delete", data={"csrf_token": csrf}).status_code == 403
    assert client.post("/reports/subscriptions", data={"csrf_token": "wrong", "email": "a@soite.example",
                                                       "language": "fi", "scope": "station:kalvia"}).status_code == 403


def test_the_command_line_subscribes_lists_and_unsubscribes(tmp_path):
    runner = CliRunner()
    env = {"PALAUTE_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"}
    from fleet_server.core.db import make_engine, make_session_factory, migrate

    migrate(env["PALAUTE_DATABASE_URL"])
    engine = make_engine(env["PALAUTE_DATABASE_URL"])
    seed(make_session_factory(engine))
    engine.dispose()
    ok = runner.invoke(cli_app, ["report", "subscribe", "chef@karleby.example", "--group", "kokkola", "--lang", "sv"],
                       env=env)
    assert ok.exit_code == 0, ok.output
    assert "gets the report of group kokkola in sv" in ok.output
    listed = runner.invoke(cli_app, ["report", "list"], env=env)
    assert "chef@karleby.example\tgroup kokkola\tsv\tnever" in listed.output
    bad = runner.invoke(cli_app, ["report", "subscribe", "x@y.example", "--station", "nowhere"], env=env)
    assert bad.exit_code == 1 and "no station 'nowhere'" in bad.output
    bad = runner.invoke(cli_app, ["report", "subscribe", "chef", "--station", "nowhere"], env={**env, "PALAUTE_LANG": "sv"})
    assert bad.exit_code == 1 and "fel: 'chef' är ingen e-postadress; stationen 'nowhere' finns inte" in bad.output
    listed_fi = runner.invoke(cli_app, ["report", "list"], env={**env, "PALAUTE_LANG": "fi"})
    assert "chef@karleby.example\tryhmä kokkola\tsv\tei koskaan" in listed_fi.output
    sub_id = listed.output.split("\t")[0]
    assert runner.invoke(cli_app, ["report", "unsubscribe", sub_id], env=env).exit_code == 0
    assert runner.invoke(cli_app, ["report", "unsubscribe", sub_id], env=env).exit_code == 1
