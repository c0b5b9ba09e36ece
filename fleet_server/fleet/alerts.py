"""Alert rules for the fleet, their de-duplicated state, and their delivery.

Rules (thresholds are settings, PALAUTE_ALERT_*):
- ``offline``: a kiosk that has been installed (seen at least once) is offline --
  its Last Will said so, or no status for ``alert_heartbeat_timeout_s`` -- for
  more than ``alert_offline_after_min`` while its station is open.
- ``backlog``: the kiosk is online but its outbox is not draining: at least
  ``alert_backlog_events`` queued and the oldest waiting ``alert_backlog_age_min``.
- ``clock``: online and its clock is not NTP-synchronised (event times are guesses).
- ``disk``: free disk below ``alert_disk_low_mb``.
- ``storage``: the kiosk says it cannot store answers (``storage_error`` in its
  status: disk full, a SQLite error, or a corrupt outbox it replaced); critical,
  since answers then wait in the kiosk's memory or are lost.
- ``temperature``: CPU above ``alert_temp_high_c``.
- ``events_missing``: the server lacks some of a kiosk's answers (seq gaps older
  than ``gap_grace_s``; fleet_server.fleet.gaps asks the kiosk for them and says when
  they cannot come back). A gap found unrecoverable keeps the alert open for a
  day (``UNRECOVERABLE_ALERT_FOR``), then only the device page shows it.
- ``rollout_halted``: a software rollout stopped itself because kiosks failed
  their update (fleet_server.fleet.rollouts); cleared when it is resumed or aborted.
- ``no_feedback``: a station with an installed kiosk has received no feedback at
  all for ``alert_no_feedback_hours`` although it was open (a broken button or a
  covered screen looks exactly like this).
A station without opening hours in its config counts as always open.

State: an open ``alerts`` row per condition key (``rule:station[/device]``); the
same condition on the next run finds it and does nothing, so each firing is one
row and one notification. When the condition is gone the row is cleared (and the
clearing is notified once).

Delivery: each firing and each clearing becomes one ``alert_deliveries`` row per
channel (e-mail, webhook; unique per alert x event x channel). A pass claims one
due row at a time (``FOR UPDATE SKIP LOCKED``), sends it and commits, so several
server processes never send the same row twice, and a failing channel is retried
on its own backoff (``alert_retry_min_s`` doubling up to ``alert_retry_max_s``)
while the others are done: a webhook that is down does not send the e-mail again.
A clearing waits for its firing on the same channel.
"""

from __future__ import annotations

import json
import logging
import smtplib
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage

from sqlalchemy import and_, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased, sessionmaker

from fleet_server.core import i18n
from fleet_server.core.clock import utcnow
from fleet_server.core.i18n import N_, NN_
from fleet_server.core.settings import Settings
from fleet_server.fleet.status_bounds import sane
from fleet_server.models import Alert, AlertDelivery, Device
from palaute_wire.contract import OpeningHours
from palaute_wire.opening_hours import is_open

_LOGGER = logging.getLogger(__name__)

OPEN_SAMPLE_STEP = timedelta(minutes=15)
"""Resolution of "was the station open at some point in this window"."""
WEBHOOK_TIMEOUT_S = 10
SMTP_TIMEOUT_S = 10
MAX_DELIVERIES_PER_PASS = 200
"""A pass sends at most this many; the rest wait for the next pass (a flood after an outage)."""


# ----------------------------------------------------------------- opening hours


def open_within(hours: OpeningHours | None, start: datetime, end: datetime) -> bool:
    """Open at some moment of [start, end], sampled every OPEN_SAMPLE_STEP (palaute_wire.opening_hours' rule)."""
    at = start
    while at <= end:
        if is_open(hours, at):
            return True
        at += OPEN_SAMPLE_STEP
    return is_open(hours, end)


def device_online(device: Device, now: datetime, heartbeat_timeout_s: float) -> bool:
    """Online by its own word (retained status / Last Will) *and* heard from recently."""
    if not device.online or device.status_received_at is None:
        return False
    return (now - device.status_received_at).total_seconds() <= heartbeat_timeout_s


# ----------------------------------------------------------------- rules


RULE_NAMES = {
    "offline": N_("offline"), "backlog": N_("backlog"), "clock": N_("clock"), "disk": N_("disk"),
    "storage": N_("storage"), "temperature": N_("temperature"), "events_missing": N_("events_missing"),
    "no_feedback": N_("no_feedback"), "rollout_halted": N_("rollout_halted"), "test": N_("test"),
}
"""The rules as e-mail subjects and pages name them; English keeps the rule ids (scripts filter on them)."""
TEXTS = {
    "offline": N_("kiosk {device} at {station} has been offline for {duration} while the station is open"),
    "backlog": NN_("kiosk {device}: {depth} answer waiting, for {duration}; it is online but not delivering",
                   "kiosk {device}: {depth} answers waiting, the oldest for {duration}; it is online but not delivering"),
    "clock": N_("kiosk {device}: clock not synchronised (NTP); answer times are unreliable"),
    "disk": N_("kiosk {device}: only {free} MB disk free"),
    "storage": N_("kiosk {device} cannot store answers normally: {detail}"),
    "temperature": N_("kiosk {device}: CPU at {temp} °C"),
    "events_missing": NN_("kiosk {device}: {count} answer missing from the server (seq {ranges}); the device page "
                          "says whether it can still come back",
                          "kiosk {device}: {count} answers missing from the server (seq {ranges}); the device page "
                          "says whether they can still come back"),
    "events_missing_waiting": NN_("kiosk {device}: {count} answer missing from the server (seq {ranges}); the "
                                  "server asks the kiosk to send it again when it is online",
                                  "kiosk {device}: {count} answers missing from the server (seq {ranges}); the "
                                  "server asks the kiosk to send them again when it is online"),
    "events_missing_asked": NN_("kiosk {device}: {count} answer missing from the server (seq {ranges}); the "
                                "server has asked the kiosk to send it again",
                                "kiosk {device}: {count} answers missing from the server (seq {ranges}); the server "
                                "has asked the kiosk to send them again"),
    "events_missing_lost": NN_("kiosk {device}: {count} answer missing from the server (seq {ranges}); it "
                               "cannot come back, the kiosk no longer has it",
                               "kiosk {device}: {count} answers missing from the server (seq {ranges}); {lost} of "
                               "them cannot come back, the kiosk no longer has them"),
    "no_feedback_ever": N_("station {station}: no feedback ever although it was open; check the kiosk's buttons "
                           "and screen"),
    "no_feedback": N_("station {station}: no feedback for {duration} although it was open; check the kiosk's "
                      "buttons and screen"),
    "rollout_halted": N_("rollout {rollout} of release {version} halted: {reason}"),
}
"""Alert messages as catalogue texts: stored with their values (alerts.text_id, .params) and said in the
reader's language (``alert_text``); ``message`` keeps the English for logs, the CLI and webhooks. A text
with a count (``NN_``) is stored as its plural and said in the form its count needs ("1 vastaus")."""
COUNTS = ("count", "depth")
"""The parameter a counted text's form follows (the first one it has)."""
STATES = {"critical": N_("CRITICAL"), "warning": N_("WARNING"), "cleared": N_("RESOLVED")}
SUBJECT = N_("[Palaute {state}] {rule} at {where}")
STARTED, CLEARED = N_("started: {when}"), N_("cleared: {when}")
FOOTER = N_("alert {key} (#{id})")


@dataclass(frozen=True)
class Condition:
    rule: str
    station_id: str
    device_id: str | None
    message: str
    severity: str = "warning"
    text: str = ""
    """A TEXTS entry; empty: ``message`` is said as it is, in every language."""
    params: Mapping[str, str | int] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.rule}:{self.station_id}" + (f"/{self.device_id}" if self.device_id else "")


def _count(params: Mapping[str, object]) -> int:
    n = next((params[k] for k in COUNTS if k in params), 0)
    return n if isinstance(n, int) else 0


def condition(rule: str, station_id: str, device_id: str | None, text: str, severity: str = "warning",
              **params: str | int) -> Condition:
    """A condition whose message is the catalogue ``text`` with ``params`` (English in ``message``)."""
    with i18n.using("en"):
        message = i18n.counted(text, _count(params)).format(**params)
    return Condition(rule, station_id, device_id, message, severity, text, params)


def alert_text(alert: Alert | Mapping) -> str:
    """An alert's message in the current language (i18n): its catalogue text with its values (whole
    numbers in the language's format), or
    the stored message for rows and payloads without one (older rows, the CLI's test alert)."""
    get = alert.get if isinstance(alert, Mapping) else lambda name, default=None: getattr(alert, name, default)
    text, params = get("text_id") or get("text") or "", get("params") or {}
    if not text:
        return str(get("message") or "")
    said = {k: i18n.number(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in params.items()}
    try:
        return i18n.counted(text, _count(params)).format(**said)
    except (KeyError, IndexError, ValueError):  # a translation with other placeholders: English, never nothing
        return text.format(**params)


def rule_name(rule: str) -> str:
    return i18n.gettext(RULE_NAMES[rule]) if rule in RULE_NAMES else rule


def _station_hours(session: Session) -> dict[str, OpeningHours | None]:
    from fleet_server.fleet.remote_config import opening_hours_by_station

    return opening_hours_by_station(session)  # rebuilt only for stations whose config changed


def _minutes(delta: timedelta) -> str:
    """A duration the same in fi, sv and en ("30 min", "2 h 5 min")."""
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h {minutes % 60} min"


def evaluate(session: Session, settings: Settings, now: datetime | None = None) -> list[Condition]:
    """Every condition that holds right now: each kiosk's own, its missing answers, stations
    that stay quiet although open, halted rollouts (in that order)."""
    now = now or utcnow()
    hours = _station_hours(session)
    devices = session.scalars(select(Device).where(Device.state != "retired")).all()
    found: list[Condition] = []
    for d in devices:
        found += _kiosk_conditions(d, hours.get(d.station_id), settings, now)
    found += _missing_answers(session, devices, settings, now)
    found += _quiet_stations(session, hours, settings, now)
    found += _halted_rollouts(session)
    return found


def _kiosk_conditions(d: Device, hours: OpeningHours | None, settings: Settings, now: datetime) -> list[Condition]:
    """Offline while the station is open; or, online: backlog, clock, disk, storage, temperature."""
    if d.last_seen_at is None:
        return []  # provisioned, not installed yet
    if not device_online(d, now, settings.alert_heartbeat_timeout_s):
        away = now - d.last_seen_at
        if away > timedelta(minutes=settings.alert_offline_after_min) and is_open(hours, now):
            return [condition("offline", d.station_id, d.id, TEXTS["offline"], "critical",
                              device=d.id, station=d.station_id, duration=_minutes(away))]
        return []
    checks = (_backlog(d, settings), _clock(d), _disk(d, settings), _storage(d), _temperature(d, settings))
    return [c for c in checks if c is not None]


def _backlog(d: Device, settings: Settings) -> Condition | None:
    depth, age = sane(d, "queue_depth"), sane(d, "oldest_queued_age_s")
    if (depth or 0) >= settings.alert_backlog_events and (age or 0) >= settings.alert_backlog_age_min * 60:
        return condition("backlog", d.station_id, d.id, TEXTS["backlog"], device=d.id, depth=int(depth or 0),
                         duration=_minutes(timedelta(seconds=age or 0)))
    return None


def _clock(d: Device) -> Condition | None:
    if d.clock_synced is False:
        return condition("clock", d.station_id, d.id, TEXTS["clock"], device=d.id)
    return None


def _disk(d: Device, settings: Settings) -> Condition | None:
    free = sane(d, "disk_free_mb")
    if free is not None and free < settings.alert_disk_low_mb:
        return condition("disk", d.station_id, d.id, TEXTS["disk"], device=d.id, free=f"{free:.0f}")
    return None


def _storage(d: Device) -> Condition | None:
    storage = (d.last_status or {}).get("storage_error")
    if storage:
        return condition("storage", d.station_id, d.id, TEXTS["storage"], "critical", device=d.id, detail=str(storage))
    return None


def _temperature(d: Device, settings: Settings) -> Condition | None:
    cpu = sane(d, "cpu_temp_c")
    if cpu is not None and cpu > settings.alert_temp_high_c:
        return condition("temperature", d.station_id, d.id, TEXTS["temperature"], device=d.id, temp=f"{cpu:.0f}")
    return None


def _missing_answers(session: Session, devices: Sequence[Device], settings: Settings,
                     now: datetime) -> list[Condition]:
    """Kiosks with gaps past the grace; an unrecoverable gap stays on the device page, but alerts for a day."""
    from fleet_server.fleet.gap_words import describe
    from fleet_server.fleet.gaps import UNRECOVERABLE_ALERT_FOR, open_gaps

    gaps = open_gaps(session, [d.id for d in devices])
    found = []
    for d in devices:
        missing = [g for g in gaps.get(d.id, []) if now - g.detected_at >= timedelta(seconds=settings.gap_grace_s)
                   and (g.unrecoverable_at is None or now - g.unrecoverable_at < UNRECOVERABLE_ALERT_FOR)]
        if missing:  # the English message has describe's detail; every language says the state (TEXTS)
            ranges = ", ".join(f"{g.first_seq}–{g.last_seq}" if g.last_seq > g.first_seq else f"{g.first_seq}"
                               for g in missing[:5]) + (" …" if len(missing) > 5 else "")
            lost = sum(g.missing for g in missing if g.unrecoverable_at is not None)
            state = "lost" if lost else ("asked" if any(g.resend_at for g in missing) else "waiting")
            params: dict[str, str | int] = {"device": d.id, "count": sum(g.missing for g in missing),
                                            "ranges": ranges, **({"lost": lost} if lost else {})}
            with i18n.using("en"):
                message = f"kiosk {d.id}: {describe(missing, now)[0]}"
            found.append(Condition("events_missing", d.station_id, d.id, message, "warning",
                                   TEXTS[f"events_missing_{state}"], params))
    return found


def _quiet_stations(session: Session, hours: Mapping[str, OpeningHours | None], settings: Settings,
                    now: datetime) -> list[Condition]:
    """Stations installed for the whole window with no answer in it although they were open."""
    window = timedelta(hours=settings.alert_no_feedback_hours)
    stations = session.execute(
        select(Device.station_id, func.max(Device.last_event_at), func.min(Device.created_at))
        .where(Device.state != "retired", Device.last_seen_at.is_not(None))
        .group_by(Device.station_id)
    ).all()
    found = []
    for station_id, last_event, since in stations:
        if since is None or now - since < window:
            continue
        if (last_event is None or now - last_event > window) and open_within(hours.get(station_id), now - window, now):
            if last_event is None:
                found.append(condition("no_feedback", station_id, None, TEXTS["no_feedback_ever"], station=station_id))
            else:
                found.append(condition("no_feedback", station_id, None, TEXTS["no_feedback"], station=station_id,
                                       duration=_minutes(now - last_event)))
    return found


def _halted_rollouts(session: Session) -> list[Condition]:
    """One per halted rollout, at the station of a kiosk that failed it (as rollouts.halted finds them)."""
    from fleet_server.models import Rollout, RolloutDevice

    found = []
    for rollout in session.scalars(select(Rollout).where(Rollout.state == "halted")):
        failed = session.scalars(select(RolloutDevice).where(RolloutDevice.rollout_id == rollout.id,
                                                             RolloutDevice.state == "failed")).first()
        device = session.get(Device, failed.device_id) if failed is not None else None
        if device is not None:
            found.append(condition("rollout_halted", device.station_id, None, TEXTS["rollout_halted"], "critical",
                                   rollout=rollout.id, version=rollout.release_version, reason=rollout.reason or ""))
    return found


# ----------------------------------------------------------------- state


@dataclass
class Changes:
    fired: list[Alert] = field(default_factory=list)
    cleared: list[Alert] = field(default_factory=list)


def reconcile(session: Session, conditions: Sequence[Condition], now: datetime | None = None) -> Changes:
    """Open a row for each new condition, clear rows whose condition is gone."""
    now = now or utcnow()
    open_rows = {a.key: a for a in session.scalars(select(Alert).where(Alert.cleared_at.is_(None)))}
    wanted = {c.key: c for c in conditions}
    changes = Changes()
    for key, cond in wanted.items():
        row = open_rows.get(key)
        if row is None:
            row = Alert(key=key, rule=cond.rule, severity=cond.severity, station_id=cond.station_id,
                        device_id=cond.device_id, message=cond.message, text_id=cond.text,
                        params=dict(cond.params), started_at=now)
            session.add(row)
            changes.fired.append(row)
        else:  # keep the figures current; not a new firing
            row.message, row.text_id, row.params = cond.message, cond.text, dict(cond.params)
    for key, row in open_rows.items():
        if key not in wanted:
            row.cleared_at = now
            changes.cleared.append(row)
    session.flush()
    return changes


def open_alerts(session: Session, station_ids: Sequence[str] | None = None) -> list[Alert]:
    query = select(Alert).where(Alert.cleared_at.is_(None))
    if station_ids is not None:
        query = query.where(Alert.station_id.in_(list(station_ids)))
    return list(session.scalars(query.order_by(Alert.started_at.desc())))


def recent_alerts(session: Session, station_ids: Sequence[str] | None = None, limit: int = 50) -> list[Alert]:
    query = select(Alert)
    if station_ids is not None:
        query = query.where(Alert.station_id.in_(list(station_ids)))
    return list(session.scalars(query.order_by(Alert.started_at.desc()).limit(limit)))


# ----------------------------------------------------------------- delivery


def alert_payload(alert: Alert, event: str) -> dict:
    return {
        "event": event,  # "firing" | "cleared"
        "id": alert.id,
        "key": alert.key,
        "rule": alert.rule,
        "severity": alert.severity,
        "station_id": alert.station_id,
        "device_id": alert.device_id,
        "message": alert.message,
        "text": alert.text_id or None,
        "params": alert.params or {},
        "started_at": alert.started_at.isoformat(),
        "cleared_at": alert.cleared_at.isoformat() if alert.cleared_at else None,
    }


@dataclass(frozen=True)
class Channel:
    """One way alerts go out; ``send`` delivers one payload or raises."""

    name: str  # email | webhook: the channel column of alert_deliveries
    send: Callable[[dict], None]

    def __call__(self, payload: dict) -> None:
        self.send(payload)


def email_channel(settings: Settings) -> Channel | None:
    if not settings.smtp_host or not settings.alert_email_to:
        return None
    recipients = [a.strip() for a in settings.alert_email_to.split(",") if a.strip()]

    def send(payload: dict) -> None:
        msg = alert_email(settings, payload, recipients)
        send_mail(settings, msg)

    return Channel("email", send)


def alert_email(settings: Settings, payload: Mapping, recipients: Sequence[str]) -> EmailMessage:
    """The e-mail of one firing or clearing, in ``alert_email_language`` (plain text)."""
    with i18n.using(settings.alert_email_language):
        _ = i18n.gettext
        state = STATES["cleared"] if payload["event"] == "cleared" else STATES.get(payload["severity"], STATES["warning"])
        where = payload["station_id"] + (f"/{payload['device_id']}" if payload["device_id"] else "")
        msg = EmailMessage()
        msg["Subject"] = _(SUBJECT).format(state=_(state), rule=rule_name(payload["rule"]), where=where)
        msg["From"] = settings.alert_email_from
        msg["To"] = ", ".join(recipients)
        lines = [alert_text(payload), "", _(STARTED).format(when=_when(payload["started_at"]))]
        if payload["cleared_at"]:
            lines.append(_(CLEARED).format(when=_when(payload["cleared_at"])))
        lines += ["", _(FOOTER).format(key=payload["key"], id=payload["id"])]
        msg.set_content("\n".join(lines))
        msg["Content-Language"] = settings.alert_email_language
    return msg


def _when(value: str | datetime) -> str:
    """A time in the reader's format, local (Finland) time."""
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return i18n.moment_long(at) if at.tzinfo else str(value)


def send_mail(settings: Settings, msg: EmailMessage) -> None:
    """One message through the configured SMTP server (alerts and monthly reports); raises on failure."""
    if not settings.smtp_host:
        raise OSError("no SMTP server: set PALAUTE_SMTP_HOST (and PALAUTE_SMTP_PORT)")
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT_S) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_username and settings.smtp_password:
            smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
        smtp.send_message(msg)


def webhook_channel(settings: Settings) -> Channel | None:
    if not settings.alert_webhook_url:
        return None
    url = settings.alert_webhook_url

    def send(payload: dict) -> None:
        request = urllib.request.Request(
            url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_S) as response:
            if response.status >= 300:
                raise OSError(f"webhook answered {response.status}")

    return Channel("webhook", send)


def channels_from(settings: Settings) -> list[Channel]:
    return [c for c in (email_channel(settings), webhook_channel(settings)) if c is not None]


def enqueue(session: Session, channels: Sequence[Channel], now: datetime) -> int:
    """A delivery row per channel for each firing and clearing not handed over yet; how many.

    With no channel configured, alerts are only shown on the dashboard and are
    marked handed over so enabling a channel later does not flood it with history.
    Concurrent passes insert the same rows at most once (unique key, ON CONFLICT DO NOTHING).
    """
    rows: list[dict] = []
    firing = session.scalars(select(Alert).where(Alert.notified_at.is_(None))).all()
    cleared = session.scalars(
        select(Alert).where(Alert.cleared_at.is_not(None), Alert.cleared_notified_at.is_(None))).all()
    for event, alerts in (("firing", firing), ("cleared", cleared)):
        for alert in alerts:
            rows += [{"alert_id": alert.id, "event": event, "channel": c.name, "created_at": now, "attempts": 0,
                      "next_attempt_at": now, "last_error": ""} for c in channels]
    if rows:
        dialect_insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        session.execute(dialect_insert(AlertDelivery.__table__).on_conflict_do_nothing(
            index_elements=["alert_id", "event", "channel"]), rows)
    for alert in firing:
        alert.notified_at = now
    for alert in cleared:
        alert.cleared_notified_at = now
    session.flush()
    return len(rows)


def retry_delay(settings: Settings, attempts: int) -> timedelta:
    """Wait after the ``attempts``-th failure: doubling from the minimum, capped."""
    return timedelta(seconds=min(settings.alert_retry_max_s, settings.alert_retry_min_s * 2 ** (attempts - 1)))


def _claim_one(session: Session, names: Sequence[str], now: datetime) -> AlertDelivery | None:
    earlier = aliased(AlertDelivery)
    firing_pending = select(earlier.id).where(
        earlier.alert_id == AlertDelivery.alert_id, earlier.channel == AlertDelivery.channel,
        earlier.event == "firing", earlier.delivered_at.is_(None)).exists()
    return session.scalars(
        select(AlertDelivery)
        .where(AlertDelivery.delivered_at.is_(None), AlertDelivery.next_attempt_at <= now,
               AlertDelivery.channel.in_(list(names)),
               ~and_(AlertDelivery.event == "cleared", firing_pending))
        .order_by(AlertDelivery.id).limit(1)
        .with_for_update(skip_locked=True, of=AlertDelivery)
    ).first()


def deliver(session_factory: sessionmaker[Session], settings: Settings, channels: Sequence[Channel],
            now: datetime | None = None) -> int:
    """Send the due deliveries, each in its own transaction; returns how many went out."""
    now = now or utcnow()
    by_name = {c.name: c for c in channels}
    sent = 0
    for _ in range(MAX_DELIVERIES_PER_PASS):
        with session_factory() as session, session.begin():
            row = _claim_one(session, list(by_name), now)
            if row is None:
                break
            alert = session.get(Alert, row.alert_id)
            assert alert is not None
            try:
                by_name[row.channel](alert_payload(alert, row.event))
            except Exception as exc:  # noqa: BLE001 - any channel failure: this row waits and is retried
                row.attempts += 1
                row.next_attempt_at = now + retry_delay(settings, row.attempts)
                row.last_error = f"{type(exc).__name__}: {exc}"[:500]
                _LOGGER.warning("alert %s (%s) not delivered by %s (attempt %d), retrying at %s: %s", alert.key,
                                row.event, row.channel, row.attempts, row.next_attempt_at.isoformat(), exc)
                continue
            session.execute(update(AlertDelivery).where(AlertDelivery.id == row.id)
                            .values(delivered_at=now, attempts=row.attempts + 1, last_error=""))
            sent += 1
    return sent


# ----------------------------------------------------------------- the loop


def run_once(session_factory: sessionmaker[Session], settings: Settings, channels: Sequence[Channel],
             now: datetime | None = None) -> Changes:
    """One pass: command bookkeeping, rules, state, delivery."""
    from fleet_server.fleet.remote_config import reconcile_acks

    now = now or utcnow()
    with session_factory() as session, session.begin():
        reconcile_acks(session)
        changes = reconcile(session, evaluate(session, settings, now), now)
        enqueue(session, channels, now)
    deliver(session_factory, settings, channels, now)
    for alert in changes.fired:
        _LOGGER.warning("alert: %s", alert.message)
    for alert in changes.cleared:
        _LOGGER.info("alert cleared: %s", alert.key)
    return changes
