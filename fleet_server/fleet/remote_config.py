"""Station configs (versioned, validated, published retained) and device commands.

Settings are layered: built-in defaults < fleet-wide defaults (``station_configs``
rows with ``station_id`` NULL) < the station's own rows. Each save appends a row
with the scope's complete override set, so the table is the history.

Versions: a station's ``config_version`` is 1 + the highest row id among its own
rows and the fleet defaults' rows (1 = the built-in defaults, the same version a
fresh kiosk starts with). It therefore grows whenever either layer changes,
never repeats, and is the same for every device at the station, so "applied vs
current" on the devices page is a plain comparison. ``survey_version`` is the id of
the row that set the survey (0 = the built-in survey), so events say which
wording they answered.

Every config is validated with the contract's ``StationConfig`` before it is
saved, and the kiosk validates it again; a config that fails on the server is
refused with the reasons, and is never published.

The published config carries the station's active "you said, we did" notes
(fleet_server.fleet.notes.active_notes), and per kiosk its release target and its web
survey link (``with_release``; links are renewed by ``renew_links``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from weakref import WeakKeyDictionary

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fleet_server.core.clock import utcnow
from fleet_server.core.errors import ConfigInvalid
from fleet_server.fleet.notes import active_notes
from fleet_server.fleet.publisher import Publisher
from fleet_server.fleet.survey_links import accepts_link, shown_expiry
from fleet_server.models import Device, DeviceCommand, Station, StationConfigVersion
from palaute_wire.contract import Command, CommandName, OpeningHours, StationConfig, encode, topic
from palaute_wire.surveys import default_survey

_LOGGER = logging.getLogger(__name__)

SETTING_KEYS = (
    "survey",
    "default_lang",
    "languages",
    "opening_hours",
    "idle_timeout_s",
    "followup_timeout_s",
    "burst",
    "notes",
)
"""StationConfig fields a scope may set; the rest (ids, versions, name) the server fills in."""

def _latest(session: Session, station_id: str | None) -> StationConfigVersion | None:
    scope = StationConfigVersion.station_id.is_(None) if station_id is None else (
        StationConfigVersion.station_id == station_id
    )
    return session.scalars(
        select(StationConfigVersion).where(scope).order_by(StationConfigVersion.id.desc()).limit(1)
    ).first()


def scope_settings(session: Session, station_id: str | None) -> dict[str, Any]:
    """What one layer sets (the fleet defaults when ``station_id`` is None)."""
    row = _latest(session, station_id)
    return dict(row.settings) if row is not None else {}


def _survey_version(session: Session, station_id: str) -> int:
    """Id of the newest row among the effective layers that set the survey; 0 = built-in."""
    for scope in (station_id, None):
        row = _latest(session, scope)
        if row is not None and "survey" in row.settings:
            return row.id
    return 0


def build_station_config(
    session: Session, station_id: str, *, overrides: dict[str, Any] | None = None, defaults: dict[str, Any] | None = None
) -> StationConfig:
    """The station's effective, validated config. ``overrides``/``defaults`` replace
    the stored layers (to validate a change before saving it)."""
    station = session.get(Station, station_id)
    if station is None:
        raise KeyError(station_id)
    fleet = scope_settings(session, None) if defaults is None else defaults
    own = scope_settings(session, station_id) if overrides is None else overrides
    merged: dict[str, Any] = {"survey": default_survey().model_dump(mode="json")}
    merged.update(fleet)
    merged.update(own)
    ids = [r.id for r in (_latest(session, None), _latest(session, station_id)) if r is not None]
    try:
        notes = list(merged.pop("notes", None) or [])
        notes.extend(n.model_dump(mode="json") for n in active_notes(session, station_id))
        return StationConfig.model_validate(
            {
                **merged,
                "notes": notes,
                "config_version": 1 + max(ids, default=0),
                "survey_version": _survey_version(session, station_id),
                "station_id": station_id,
                "station_name": station.name,
            }
        )
    except ValidationError as exc:
        raise ConfigInvalid(_problems(exc)) from None


def _problems(exc: ValidationError) -> list[str]:
    return [f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors()]


def save_settings(
    session: Session,
    station_id: str | None,
    changes: dict[str, Any],
    *,
    by: str | None = None,
    comment: str = "",
) -> StationConfigVersion:
    """Apply ``changes`` to one layer (a value of None removes that override) and
    append the new version, after validating every station it affects."""
    unknown = set(changes) - set(SETTING_KEYS)
    if unknown:
        raise ConfigInvalid([f"{k}: not a station setting (known: {', '.join(SETTING_KEYS)})" for k in sorted(unknown)])
    if station_id is not None and session.get(Station, station_id) is None:
        raise KeyError(station_id)
    new = scope_settings(session, station_id)
    for key, value in changes.items():
        if value is None:
            new.pop(key, None)
        else:
            new[key] = value
    affected = (
        [station_id]
        if station_id is not None
        else list(session.scalars(select(Station.id).order_by(Station.id)))
    )
    for sid in affected:
        if station_id is None:
            build_station_config(session, sid, defaults=new)
        else:
            build_station_config(session, sid, overrides=new)
    if station_id is None and not affected:
        # No station to validate against: validate the layer on a stand-in.
        try:
            StationConfig.model_validate({"survey": default_survey().model_dump(mode="json"), **new,
                                          "config_version": 1, "station_id": "x"})
        except ValidationError as exc:
            raise ConfigInvalid(_problems(exc)) from None
    row = StationConfigVersion(station_id=station_id, settings=new, created_by=by, comment=comment)
    session.add(row)
    session.flush()
    return row


def history(session: Session, station_id: str | None, limit: int = 20) -> list[StationConfigVersion]:
    scope = StationConfigVersion.station_id.is_(None) if station_id is None else (
        StationConfigVersion.station_id == station_id
    )
    return list(
        session.scalars(
            select(StationConfigVersion).where(scope).order_by(StationConfigVersion.id.desc()).limit(limit)
        )
    )


def live_devices(session: Session, station_id: str | None = None) -> list[Device]:
    query = select(Device).where(Device.state != "retired")
    if station_id is not None:
        query = query.where(Device.station_id == station_id)
    return list(session.scalars(query.order_by(Device.station_id, Device.id)))


@dataclass(frozen=True)
class Published:
    station_id: str
    config_version: int
    devices: tuple[str, ...]


def publish_station(session: Session, publisher: Publisher, station_id: str) -> Published:
    """Publish the station's config, retained, on each live device's config topic."""
    config = build_station_config(session, station_id)
    devices = tuple(d.id for d in live_devices(session, station_id))
    for device_id in devices:
        publisher.publish(topic(station_id, device_id, "config"), with_release(session, publisher, config, device_id),
                          retain=True)
    _LOGGER.info("published config %d of %s to %d device(s)", config.config_version, station_id, len(devices))
    return Published(station_id, config.config_version, devices)


def with_release(session: Session, publisher: Publisher, config: StationConfig, device_id: str) -> bytes:
    """The config payload for one kiosk: the station's, plus the release target a rollout
    gave this kiosk (fleet_server.fleet.rollouts), if any, and a fresh web survey link for
    its QR code when the server makes them and the kiosk understands them
    (fleet_server.fleet.survey_links)."""
    from fleet_server.fleet.release_targets import release_target_for

    update: dict[str, Any] = {}
    target = release_target_for(session, publisher.settings, device_id)
    if target is not None:
        update["release"] = target
    links = getattr(publisher, "survey_links", None)
    if links is not None:
        device = session.get(Device, device_id)
        if device is not None and accepts_link(device.last_status):
            update["survey_link"] = links.link(config.station_id, device_id)
    return encode(config.model_copy(update=update) if update else config)


def publish_device_config(session: Session, settings: object, publisher: Publisher, device: Device) -> None:
    """Publish one kiosk's config again (a rollout targeted it or took its target away)."""
    config = build_station_config(session, device.station_id)
    publisher.publish(topic(device.station_id, device.id, "config"), with_release(session, publisher, config, device.id),
                      retain=True)


DRIFT_RETRY_S = 600
"""A kiosk still on an old config is sent the current one again at most this often."""


def repair_drift(session: Session, publisher: Publisher, attempts: dict[str, tuple[int, float]],
                 now_s: float, online: Callable[[Device], bool]) -> list[str]:
    """Publish the current config to each online kiosk that reports another version
    (a kiosk provisioned after the last publish, a broker that lost its retained
    messages). A kiosk that refused the config (``config_error``) is left alone: the
    page shows why. ``attempts`` (device -> (version, when)) throttles repeats."""
    versions = current_versions(session)
    repaired: list[str] = []
    for device in live_devices(session):
        current = versions.get(device.station_id, 1)
        if device.config_version == current or not online(device):
            continue
        if (device.last_status or {}).get("config_error"):
            continue
        last = attempts.get(device.id)
        if last is not None and last[0] == current and now_s - last[1] < DRIFT_RETRY_S:
            continue
        config = build_station_config(session, device.station_id)
        publisher.publish(topic(device.station_id, device.id, "config"),
                          with_release(session, publisher, config, device.id), retain=True)
        attempts[device.id] = (current, now_s)
        repaired.append(device.id)
    return repaired


def renew_links(session: Session, publisher: Publisher, attempts: dict[str, float], now: datetime, now_s: float,
                online: Callable[[Device], bool]) -> list[str]:
    """Send the current config, with a fresh survey link, to each online kiosk that understands
    links and reports none or one with less than half its life left (fleet_server.fleet.survey_links).
    ``attempts`` (device -> when) sends at most one every DRIFT_RETRY_S to a kiosk whose status
    has not caught up yet."""
    links = getattr(publisher, "survey_links", None)
    if links is None:
        return []
    renewed: list[str] = []
    configs: dict[str, StationConfig] = {}
    for device in live_devices(session):
        status = device.last_status
        if not accepts_link(status) or not links.needs_new(shown_expiry(status), now) or not online(device):
            continue
        if now_s - attempts.get(device.id, float("-inf")) < DRIFT_RETRY_S:
            continue
        if device.station_id not in configs:
            try:
                configs[device.station_id] = build_station_config(session, device.station_id)
            except ConfigInvalid as exc:
                _LOGGER.warning("no survey link for %s: its station's config is invalid (%s)", device.id, exc)
                continue
        publisher.publish(topic(device.station_id, device.id, "config"),
                          with_release(session, publisher, configs[device.station_id], device.id), retain=True)
        attempts[device.id] = now_s
        renewed.append(device.id)
    return renewed


def publish_all(session: Session, publisher: Publisher) -> list[Published]:
    return [publish_station(session, publisher, sid) for sid in session.scalars(select(Station.id).order_by(Station.id))]


def clear_retained_config(publisher: Publisher, station_id: str, device_id: str) -> None:
    """Remove a retired device's retained config from the broker (an empty retained message)."""
    publisher.publish(topic(station_id, device_id, "config"), b"", retain=True)


# ----------------------------------------------------------------- commands


def send_command(
    session: Session,
    publisher: Publisher,
    device_id: str,
    name: CommandName,
    *,
    from_seq: int | None = None,
    by: str | None = None,
    now: datetime | None = None,
) -> DeviceCommand:
    """Record and publish a command; the kiosk acknowledges it in its next status.

    ``now`` is the caller's clock (the fleet loop passes its pass time), so a
    command's ``issued_at`` and the loop's throttling read the same clock."""
    device = session.get(Device, device_id)
    if device is None or device.state == "retired":
        raise KeyError(device_id)
    command = Command(cmd_id=f"c-{uuid.uuid4().hex[:16]}", name=name, from_seq=from_seq, issued_at=now or utcnow())
    row = DeviceCommand(
        cmd_id=command.cmd_id, device_id=device_id, name=name, from_seq=from_seq,
        issued_at=command.issued_at, issued_by=by,
    )
    session.add(row)
    session.flush()
    # Not retained: a command is for now. QoS 1 into the kiosk's persistent session,
    # so a kiosk that is briefly away still gets it when it reconnects.
    publisher.publish(topic(device.station_id, device_id, "cmd"), encode(command))
    return row


def reconcile_acks(session: Session) -> int:
    """Copy the acknowledgements kiosks reported (status ``last_command``) onto the
    command rows; returns how many rows changed."""
    changed = 0
    pending = session.scalars(select(DeviceCommand).where(DeviceCommand.acked_at.is_(None))).all()
    by_device: dict[str, list[DeviceCommand]] = {}
    for row in pending:
        by_device.setdefault(row.device_id, []).append(row)
    for device_id, rows in by_device.items():
        device = session.get(Device, device_id)
        ack = (device.last_status or {}).get("last_command") if device is not None else None
        if not ack:
            continue
        for row in rows:
            if row.cmd_id == ack.get("cmd_id"):
                row.acked_at = datetime.fromisoformat(ack["at"])
                row.ok = bool(ack.get("ok"))
                row.detail = str(ack.get("detail", ""))[:500]
                changed += 1
    return changed


def recent_commands(session: Session, device_id: str, limit: int = 10) -> list[DeviceCommand]:
    return list(
        session.scalars(
            select(DeviceCommand)
            .where(DeviceCommand.device_id == device_id)
            .order_by(DeviceCommand.issued_at.desc())
            .limit(limit)
        )
    )


def current_versions(session: Session) -> dict[str, int]:
    """Each station's current config_version, cheaply (no validation)."""
    fleet = session.scalar(select(func.max(StationConfigVersion.id)).where(StationConfigVersion.station_id.is_(None)))
    own = dict(
        session.execute(
            select(StationConfigVersion.station_id, func.max(StationConfigVersion.id))
            .where(StationConfigVersion.station_id.is_not(None))
            .group_by(StationConfigVersion.station_id)
        ).all()
    )
    return {
        sid: 1 + max(fleet or 0, own.get(sid) or 0)
        for sid in session.scalars(select(Station.id))
    }


_HOURS_CACHE: WeakKeyDictionary[Any, dict[tuple[str, int | None, int | None], OpeningHours | None]] = (
    WeakKeyDictionary()
)
"""Per database (engine): opening hours by (station, fleet layer id, station layer id)."""


def opening_hours_by_station(session: Session) -> dict[str, OpeningHours | None]:
    """Each station's effective opening hours (None: its config does not validate).

    The alert pass asks every 30 s for every station; building 500 configs each time
    was most of the fleet loop's CPU at rest. Config layers are append-only rows, so
    the newest row id of the fleet layer and of the station's layer identify the
    hours: a station is rebuilt only when one of them changed (one GROUP BY a pass).
    """
    latest = dict(
        session.execute(
            select(StationConfigVersion.station_id, func.max(StationConfigVersion.id)).group_by(
                StationConfigVersion.station_id
            )
        ).all()
    )
    bind = session.get_bind()
    cached = _HOURS_CACHE.get(bind, {})
    fresh: dict[tuple[str, int | None, int | None], OpeningHours | None] = {}
    hours: dict[str, OpeningHours | None] = {}
    for sid in session.scalars(select(Station.id)):
        key = (sid, latest.get(None), latest.get(sid))
        if key in cached:
            fresh[key] = cached[key]
        else:
            try:
                fresh[key] = build_station_config(session, sid).opening_hours
            except (ConfigInvalid, KeyError):
                fresh[key] = None
        hours[sid] = fresh[key]
    _HOURS_CACHE[bind] = fresh
    return hours
