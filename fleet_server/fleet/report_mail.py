"""Monthly reports by e-mail: subscriptions, and sending each subscriber last month's report
as a PDF once, from the fleet loop.

Subscriptions (``report_subscriptions``): an address, its language (fi, sv, en) and one
station or one group. Coordinators manage all of them; staff (station managers) those of
their own station or group; the CLI any (``palaute-server report``).

Sending: from ``report_send_hour`` (local time) on the 1st, each pass of the fleet loop
1. makes one ``report_deliveries`` row per subscription for the month just ended
   (unique per subscription and month, inserted with ON CONFLICT DO NOTHING, so passes of
   several server processes make it once); a subscription added after that moment waits
   for the next month, and after an outage only the latest month is made, not a backlog;
2. claims one due row at a time (``FOR UPDATE SKIP LOCKED``), makes the report in the
   subscriber's language, sends it and marks it delivered in the same transaction, so no
   row is sent twice; a failure waits on the alerts' backoff (``alert_retry_min_s``
   doubling to ``alert_retry_max_s``), at most ``MAX_ATTEMPTS`` times.
Exactly once, with the one window every mail sender has: the SMTP server took the message
and the process died before its COMMIT; the row is then sent again.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as day_time
from email.message import EmailMessage

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from fleet_server.core import i18n
from fleet_server.core.clock import utcnow
from fleet_server.core.errors import SubscriptionInvalid
from fleet_server.core.i18n import N_
from fleet_server.core.settings import Settings
from fleet_server.fleet.alerts import retry_delay, send_mail
from fleet_server.models import ReportDelivery, ReportSubscription, Station, StationGroup
from fleet_server.results.monthly_report import last_full_month
from palaute_wire.opening_hours import LOCAL_TZ

_LOGGER = logging.getLogger(__name__)

MAX_PER_PASS = 20
"""Reports sent in one pass at most; the rest wait for the next pass."""
PASS_BUDGET_S = 20.0
"""A pass starts no new report after this long (a county's PDF takes seconds: bench/bench_monthly_report.py),
so the alert rules the same fleet loop runs are not held up; the rest go in the next pass."""
MAX_ATTEMPTS = 30
"""After this many failures a delivery is left alone (the reports page shows its last error)."""
EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")

SUBJECT = N_("Monthly report: {name}, {month}")
BODY = N_("Attached is the monthly report of {name} for {month} (PDF): {total} responses, satisfaction {satisfaction}.")
FOOTER = N_("You get this message because {email} is subscribed to this report on the Palaute fleet server. "
            "To stop it, remove the subscription on the dashboard's Monthly reports page or ask a coordinator.")


# ----------------------------------------------------------------- subscriptions


def add_subscription(session: Session, email: str, language: str, *, station_id: str | None = None,
                     group_id: str | None = None, created_by: str, now: datetime | None = None) -> ReportSubscription:
    """Save one subscription; raises SubscriptionInvalid saying what is wrong."""
    email = email.strip()
    problems = []
    if not EMAIL.match(email) or len(email) > 254:
        problems.append(i18n.gettext("{address} is not an e-mail address").format(address=repr(email)))
    if language not in i18n.LANGUAGES:
        problems.append(i18n.gettext("language {lang} is not one of {languages}").format(
            lang=repr(language), languages=", ".join(i18n.LANGUAGES)))
    if (station_id is None) == (group_id is None):
        problems.append(i18n.gettext("give either a station or a group"))
    elif station_id is not None and session.get(Station, station_id) is None:
        problems.append(i18n.gettext("no station {id}").format(id=repr(station_id)))
    elif group_id is not None and session.get(StationGroup, group_id) is None:
        problems.append(i18n.gettext("no group {id}").format(id=repr(group_id)))
    if problems:
        raise SubscriptionInvalid("; ".join(problems))
    same = session.scalar(select(ReportSubscription).where(
        ReportSubscription.email == email, ReportSubscription.station_id.is_(None) if station_id is None
        else ReportSubscription.station_id == station_id,
        ReportSubscription.group_id.is_(None) if group_id is None else ReportSubscription.group_id == group_id))
    if same is not None:
        same.language = language  # subscribing again changes the language
        return same
    row = ReportSubscription(email=email, language=language, station_id=station_id, group_id=group_id,
                             created_by=created_by, created_at=now or utcnow())
    session.add(row)
    session.flush()
    return row


def list_subscriptions(session: Session) -> list[ReportSubscription]:
    return list(session.scalars(select(ReportSubscription).order_by(ReportSubscription.email, ReportSubscription.id)))


def remove_subscription(session: Session, subscription_id: int) -> bool:
    row = session.get(ReportSubscription, subscription_id)
    if row is None:
        return False
    session.execute(delete(ReportDelivery).where(ReportDelivery.subscription_id == subscription_id))
    session.delete(row)
    session.flush()
    return True


def last_deliveries(session: Session, ids: Sequence[int]) -> dict[int, ReportDelivery]:
    """Each subscription's newest delivery row (sent or not)."""
    out: dict[int, ReportDelivery] = {}
    for row in session.scalars(select(ReportDelivery).where(ReportDelivery.subscription_id.in_(list(ids)))
                               .order_by(ReportDelivery.month, ReportDelivery.id)):
        out[row.subscription_id] = row
    return out


# ----------------------------------------------------------------- sending


def due_month(now: datetime, send_hour: int) -> tuple[date, datetime]:
    """(the month whose reports are due, the moment they became due): the month before the newest
    1st whose ``send_hour`` has passed in local time."""
    local = now.astimezone(LOCAL_TZ)
    first = local.date().replace(day=1)
    due = datetime.combine(first, day_time(send_hour), LOCAL_TZ)
    if local < due:
        first = (first - timedelta(days=1)).replace(day=1)
        due = datetime.combine(first, day_time(send_hour), LOCAL_TZ)
    return last_full_month(first + timedelta(days=1)), due


def enqueue(session: Session, settings: Settings, now: datetime) -> int:
    """A delivery row for every subscription that has none for the due month yet; how many it tried."""
    month, due = due_month(now, settings.report_send_hour)
    ids = list(session.scalars(select(ReportSubscription.id).where(ReportSubscription.created_at <= due)))
    if not ids:
        return 0
    rows = [{"subscription_id": i, "month": month, "created_at": now, "attempts": 0, "next_attempt_at": now,
             "last_error": ""} for i in ids]
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(insert(ReportDelivery.__table__).on_conflict_do_nothing(
        index_elements=["subscription_id", "month"]), rows)
    return len(rows)


@dataclass(frozen=True)
class Made:
    """One report made for a subscriber: the PDF and the message around it."""

    pdf: bytes
    filename: str
    subject: str
    body: str
    """The summary; ``message`` adds the subscriber's own footer."""


def make_report(session: Session, subscription: ReportSubscription, month: date, minimum: int,
                now: datetime) -> Made:
    """The subscription's report for ``month`` in its language (the same for every subscriber of it)."""
    from fleet_server.results import monthly_report as reports
    from fleet_server.web import report_render
    from fleet_server.web.templating import pct

    with i18n.using(subscription.language):
        scope = (reports.station_scope(session, subscription.station_id) if subscription.station_id
                 else reports.group_scope(session, subscription.group_id or ""))
        if scope is None:
            raise LookupError(f"the subscription's {'station' if subscription.station_id else 'group'} is gone")
        report = reports.build(session, scope, month, minimum, now=now)
        label = report_render.month_label(month)
        total = report.headline["total"]
        too_few = i18n.gettext("too few responses")
        body = i18n.gettext(BODY).format(name=scope.name, month=label,
                                         total=too_few if total is None else i18n.number(total),
                                         satisfaction=re.sub("<[^>]+>", "", str(pct(report.headline["satisfaction"]))))
        return Made(report_render.report_pdf(report), report_render.filename(report),
                    i18n.gettext(SUBJECT).format(name=scope.name, month=label), body)


def message(settings: Settings, subscription: ReportSubscription, made: Made) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = made.subject
    msg["From"] = settings.alert_email_from
    msg["To"] = subscription.email
    with i18n.using(subscription.language):
        footer = i18n.gettext(FOOTER).format(email=subscription.email)
    msg.set_content(f"{made.body}\n\n{footer}")
    msg.add_attachment(made.pdf, maintype="application", subtype="pdf", filename=made.filename)
    msg["Content-Language"] = subscription.language  # after: making it multipart moves Content-* headers in
    return msg


def _claim_one(session: Session, now: datetime) -> ReportDelivery | None:
    return session.scalars(
        select(ReportDelivery)
        .where(ReportDelivery.delivered_at.is_(None), ReportDelivery.next_attempt_at <= now,
               ReportDelivery.attempts < MAX_ATTEMPTS)
        .order_by(ReportDelivery.id).limit(1)
        .with_for_update(skip_locked=True, of=ReportDelivery)
    ).first()


def deliver(session_factory: sessionmaker[Session], settings: Settings, now: datetime,
            send: Callable[[Settings, EmailMessage], None] = send_mail) -> int:
    """Make and send the due reports, each in its own transaction; how many went out. Subscribers of
    the same report in the same language share one PDF; no new one is started after PASS_BUDGET_S."""
    sent = 0
    made: dict[tuple, Made] = {}
    started = time.monotonic()
    for _ in range(MAX_PER_PASS):
        if time.monotonic() - started > PASS_BUDGET_S:
            break
        with session_factory() as session, session.begin():
            row = _claim_one(session, now)
            if row is None:
                break
            subscription = session.get(ReportSubscription, row.subscription_id)
            try:
                assert subscription is not None  # deleting it deletes its rows
                key = (subscription.station_id, subscription.group_id, subscription.language, row.month)
                if key not in made:
                    made[key] = make_report(session, subscription, row.month, settings.min_responses, now)
                send(settings, message(settings, subscription, made[key]))
            except Exception as exc:  # noqa: BLE001 - any failure: this row waits and is retried
                row.attempts += 1
                row.next_attempt_at = now + retry_delay(settings, row.attempts)
                row.last_error = f"{type(exc).__name__}: {exc}"[:500]
                _LOGGER.warning("monthly report %s for %s not sent (attempt %d), retrying at %s: %s", row.month,
                                subscription.email if subscription else row.subscription_id, row.attempts,
                                row.next_attempt_at.isoformat(), exc)
                continue
            session.execute(update(ReportDelivery).where(ReportDelivery.id == row.id)
                            .values(delivered_at=now, attempts=row.attempts + 1, last_error=""))
            sent += 1
            _LOGGER.info("monthly report %s sent to %s", row.month.strftime("%Y-%m"), subscription.email)
    return sent


def run_once(session_factory: sessionmaker[Session], settings: Settings, now: datetime | None = None,
             send: Callable[[Settings, EmailMessage], None] = send_mail) -> int:
    """One pass of the fleet loop: make the due rows, send what is due; how many went out."""
    now = now or utcnow()
    if not settings.smtp_host:
        return 0  # no mail server: nothing is made, so enabling one later sends only what is then due
    with session_factory() as session, session.begin():
        enqueue(session, settings, now)
    return deliver(session_factory, settings, now, send)
