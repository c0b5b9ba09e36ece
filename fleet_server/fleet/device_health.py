"""What the devices page and API show per kiosk, with a verdict per field.

Each field comes with a level (ok | warn | bad | unknown) and words, so the page
can colour it *and* say it ("offline 25 min", "clock not synced"): colour is
never the only carrier of meaning. Thresholds are the alert settings, so the page
and the alerts agree on what is wrong. The words are the reader's language's (the
dashboard's catalogue, fleet_server.core.i18n), the missing-answers detail too
(fleet_server.fleet.gap_words).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet_server.core import i18n
from fleet_server.core.clock import utcnow
from fleet_server.core.i18n import N_
from fleet_server.core.settings import Settings
from fleet_server.fleet.alerts import alert_text, device_online, open_alerts
from fleet_server.fleet.gap_words import describe, gap_row
from fleet_server.fleet.gaps import open_gaps
from fleet_server.fleet.remote_config import current_versions, recent_commands
from fleet_server.fleet.status_bounds import sane
from fleet_server.models import Device, Station


@dataclass(frozen=True)
class Field:
    text: str
    level: str = "ok"  # ok | warn | bad | unknown


_ = i18n.gettext


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(seconds)
    if s < 3600:
        return _("{minutes} min").format(minutes=s // 60)
    if s < 86400:
        return _("{hours} h {minutes} min").format(hours=s // 3600, minutes=s % 3600 // 60)
    return _("{days} d {hours} h").format(days=s // 86400, hours=s % 86400 // 3600)


UPDATE_STATES = {"waiting": N_("waiting"), "downloading": N_("downloading"), "installing": N_("installing"),
                 "switching": N_("switching"), "trial": N_("trial")}


@dataclass
class DeviceHealth:
    device_id: str
    station_id: str
    station_name: str
    state: str
    online: bool
    status: Field
    last_seen: Field
    last_event: Field
    queue: Field
    oldest_queued: Field
    shed: Field
    version: Field
    config: Field
    clock: Field
    temperature: Field
    disk: Field
    uptime: Field
    ip: Field
    config_version_applied: int | None
    config_version_current: int
    alerts: list[str] = field(default_factory=list)
    missing: Field = field(default_factory=lambda: Field("—", "unknown"))
    """Unresolved seq gaps in words (fleet_server.fleet.gap_words.describe)."""
    gaps: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        out: dict = {
            "device_id": self.device_id, "station_id": self.station_id, "state": self.state,
            "online": self.online, "config_version_applied": self.config_version_applied,
            "config_version_current": self.config_version_current, "alerts": self.alerts,
            "gaps": self.gaps,
        }
        for name in ("status", "last_seen", "last_event", "queue", "oldest_queued", "shed", "version", "config",
                     "clock", "temperature", "disk", "uptime", "ip", "missing"):
            value: Field = getattr(self, name)
            out[name] = {"text": value.text, "level": value.level}
        return out


def _software(device: Device) -> Field:
    """The version it runs, and the update under way or the one that failed (kiosk.updater)."""
    running = device.software_version or "—"
    status = device.last_status or {}
    state, target = status.get("update_state"), status.get("update_version")
    if state in UPDATE_STATES and target:
        return Field(_("{running}, updating to {target} ({state})").format(
            running=running, target=target, state=_(UPDATE_STATES[state])), "warn")
    if state in ("rolled_back", "failed") and target:
        what = _("{running}; went back from {target}: {error}") if state == "rolled_back" \
            else _("{running}; did not install {target}: {error}")
        return Field(what.format(running=running, target=target, error=status.get("update_error") or "?")[:300], "bad")
    return Field(running, "ok" if device.software_version else "unknown")


def device_health(device: Device, station_name: str, current_version: int, settings: Settings,
                  now: datetime, alerts: list[str] | None = None) -> DeviceHealth:
    online = device_online(device, now, settings.alert_heartbeat_timeout_s)
    reported = device.last_seen_at is not None
    applied = sane(device, "config_version")
    queue, oldest = _queue_fields(device, settings)
    return DeviceHealth(
        device_id=device.id,
        station_id=device.station_id,
        station_name=station_name,
        state=device.state,
        online=online,
        status=_status_field(device, online, settings, now),
        last_seen=_seen(device.last_seen_at, now),
        last_event=_seen(device.last_event_at, now),
        queue=queue if reported else Field("—", "unknown"),
        oldest_queued=oldest if reported else Field("—", "unknown"),
        shed=_shed_field(device),
        version=_software(device),
        config=_config_field(device, applied, current_version),
        clock=_clock_field(device),
        temperature=_temperature_field(device, settings),
        disk=_disk_field(device, settings),
        uptime=_uptime_field(device),
        ip=Field(device.ip or "—", "ok" if device.ip else "unknown"),
        config_version_applied=applied,
        config_version_current=current_version,
        alerts=alerts or [],
    )


def _status_field(device: Device, online: bool, settings: Settings, now: datetime) -> Field:
    if device.state == "retired":
        return Field(_("retired"), "unknown")
    if device.last_seen_at is None:
        return Field(_("never connected"), "unknown")
    if online:
        return Field(_("online"), "ok")
    away = now - device.last_seen_at
    why = _("Last Will") if not device.online else _("no heartbeat")
    level = "bad" if away > timedelta(minutes=settings.alert_offline_after_min) else "warn"
    return Field(_("offline since {ago} ({why})").format(ago=i18n.ago(away), why=why), level)


def _seen(at: datetime | None, now: datetime) -> Field:
    return Field(i18n.ago(now - at), "ok") if at else Field(_("never"), "unknown")


def _queue_fields(device: Device, settings: Settings) -> tuple[Field, Field]:
    """(answers waiting, age of the oldest) as the kiosk last reported them."""
    depth = sane(device, "queue_depth")
    queue = Field("—", "unknown") if depth is None else Field(
        _("{n} waiting").format(n=i18n.number(int(depth))), "warn" if depth >= settings.alert_backlog_events else "ok")
    age = sane(device, "oldest_queued_age_s")
    oldest = Field("—", "unknown") if age is None else Field(
        _duration(age), "warn" if age >= settings.alert_backlog_age_min * 60 else "ok")
    return queue, oldest


def _shed_field(device: Device) -> Field:
    shed_count = sane(device, "shed_count")
    return Field("—", "unknown") if shed_count is None else Field(
        _("{n} dropped").format(n=i18n.number(int(shed_count))), "bad" if shed_count else "ok")


def _config_field(device: Device, applied: float | None, current_version: int) -> Field:
    """The config version the kiosk runs against the current one; a refused config says why."""
    refused = (device.last_status or {}).get("config_error")
    if refused:
        return Field(_("{applied}; refused the published config: {error}").format(
            applied=applied if applied is not None else "?", error=refused)[:300], "bad")
    if applied is None:
        return Field(_("unknown (current {current})").format(current=current_version), "unknown")
    if applied == current_version:
        return Field(_("{applied} (current)").format(applied=applied), "ok")
    return Field(_("{applied}, current is {current}").format(applied=applied, current=current_version), "warn")


def _clock_field(device: Device) -> Field:
    if device.clock_synced is None:
        return Field("—", "unknown")
    return Field(_("synced"), "ok") if device.clock_synced else Field(_("NOT synced"), "bad")


def _temperature_field(device: Device, settings: Settings) -> Field:
    cpu = sane(device, "cpu_temp_c")
    return Field("—", "unknown") if cpu is None else Field(
        f"{cpu:.0f} °C", "bad" if cpu > settings.alert_temp_high_c else "ok")


def _disk_field(device: Device, settings: Settings) -> Field:
    free = sane(device, "disk_free_mb")
    return Field("—", "unknown") if free is None else Field(
        _("{mb} MB free").format(mb=i18n.number(float(free), 0)),
        "bad" if free < settings.alert_disk_low_mb else "ok")


def _uptime_field(device: Device) -> Field:
    uptime = sane(device, "uptime_s")
    return Field(_duration(uptime), "ok" if uptime is not None else "unknown")


def fleet_health(session: Session, settings: Settings, station_ids: list[str] | None = None,
                 include_retired: bool = False, now: datetime | None = None) -> list[DeviceHealth]:
    """Health of every device (of ``station_ids`` when given), by station then device."""
    now = now or utcnow()
    query = select(Device, Station.name).join(Station, Station.id == Device.station_id)
    if station_ids is not None:
        query = query.where(Device.station_id.in_(station_ids))
    if not include_retired:
        query = query.where(Device.state != "retired")
    versions = current_versions(session)
    alerts_by_device: dict[str, list[str]] = {}
    for alert in open_alerts(session, station_ids):
        if alert.device_id:
            alerts_by_device.setdefault(alert.device_id, []).append(alert_text(alert))
    out = [
        device_health(device, name, versions.get(device.station_id, 1), settings, now,
                      alerts_by_device.get(device.id))
        for device, name in session.execute(query.order_by(Device.station_id, Device.id)).all()
    ]
    gaps = open_gaps(session, [h.device_id for h in out])
    for h in out:
        h.missing = Field(*describe(gaps.get(h.device_id, []), now))
        h.gaps = [gap_row(g) for g in gaps.get(h.device_id, [])]
    return out


__all__ = ["DeviceHealth", "Field", "device_health", "fleet_health", "recent_commands", "sane"]
