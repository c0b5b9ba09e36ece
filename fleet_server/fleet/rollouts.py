"""Rollouts: a signed release sent to part of the fleet in waves, halted by failures.

A rollout picks its kiosks when it is created (``target``: all, a station, several
stations, named devices, or a percentage of the fleet) and splits them into
``waves``, e.g. ``[1, "10%", "50%", "100%"]``: the sizes are cumulative, numbers
are kiosks and percentages a share of the target; named ``canary`` kiosks come
first. The fleet loop calls :func:`advance` every pass:

- a kiosk of the current wave is *targeted*: its retained config gets a
  ``release`` (palaute_wire.contract.ReleaseTarget) and the kiosk's updater does
  the rest; its status then says how it went (``software_version``,
  ``update_state``, ``update_version``, ``update_error``);
- the next wave starts once every kiosk of the current wave is healthy (runs the
  release, ``committed``) and has stayed so for ``wave_healthy_s``;
- more than ``max_failures`` failed kiosks (rolled back, or stopped before the
  switch) halt the rollout by itself (state ``halted``, an alert on the fleet page);
  IT can pause, resume and abort it (CLI and the devices page).

Only kiosks whose status carries ``update_state`` (they have the updater) are sent a
target: an older kiosk would refuse the whole config for the unknown field. Those
are *skipped* with the reason, and the page says to re-provision them.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet_server.core.clock import utcnow
from fleet_server.core.errors import RolloutError
from fleet_server.core.i18n import gettext as _
from fleet_server.core.settings import Settings
from fleet_server.fleet.publisher import Publisher
from fleet_server.models import Device, Release, Rollout, RolloutDevice

_LOGGER = logging.getLogger(__name__)

ACTIVE = ("running", "paused", "halted")
NO_UPDATER = "this kiosk has no updater (it reports no update_state): re-provision it"
DEFAULT_WAVES: tuple[Any, ...] = (1, "10%", "50%", "100%")


# ----------------------------------------------------------------- planning


def parse_waves(text: str | Sequence[Any]) -> list[Any]:
    """``"1,10%,50%,100%"`` -> ``[1, "10%", "50%", "100%"]``, checked to grow."""
    items = [s.strip() for s in text.split(",")] if isinstance(text, str) else list(text)
    waves: list[Any] = []
    for item in items:
        if isinstance(item, str) and item.endswith("%"):
            value = float(item[:-1])
            if not 0 < value <= 100:
                raise RolloutError(_("wave {wave}: a share is 1-100 %").format(wave=item))
            waves.append(f"{value:g}%")
        else:
            try:
                count = int(item)
            except (TypeError, ValueError):
                raise RolloutError(_("wave {wave}: a number of kiosks or a share like 10%").format(wave=repr(item))) from None
            if count < 1:
                raise RolloutError(_("wave {wave}: at least one kiosk").format(wave=item))
            waves.append(count)
    if not waves:
        raise RolloutError(_("at least one wave"))
    return waves


def wave_bounds(waves: Sequence[Any], total: int) -> list[int]:
    """Cumulative kiosk counts per wave for ``total`` kiosks; the last wave takes the rest."""
    bounds: list[int] = []
    for wave in waves:
        n = math.ceil(total * float(wave[:-1]) / 100) if isinstance(wave, str) else int(wave)
        bounds.append(min(total, max(n, bounds[-1] if bounds else 0)))
    if bounds:
        bounds[-1] = total
    return bounds


def _spread(rollout_key: str, device_id: str) -> str:
    """A stable shuffle: waves spread over stations instead of filling one first."""
    return hashlib.sha256(f"{rollout_key}:{device_id}".encode()).hexdigest()


def select_devices(session: Session, target: dict[str, Any]) -> list[Device]:
    query = select(Device).where(Device.state != "retired")
    kind = target.get("kind")
    if kind == "station":
        query = query.where(Device.station_id.in_(target["stations"]))
    elif kind == "devices":
        query = query.where(Device.id.in_(target["devices"]))
    elif kind not in ("all", "percent"):
        raise RolloutError(_("unknown target kind {kind} (all, station, devices, percent)").format(kind=repr(kind)))
    devices = list(session.scalars(query.order_by(Device.id)))
    if kind == "percent":
        devices.sort(key=lambda d: _spread("percent", d.id))
        devices = devices[: math.ceil(len(devices) * float(target["percent"]) / 100)]
    return devices


def create_rollout(
    session: Session,
    version: str,
    target: dict[str, Any],
    *,
    waves: Sequence[Any] = DEFAULT_WAVES,
    canary: Sequence[str] = (),
    wave_healthy_s: float = 3600,
    max_failures: int = 0,
    install_window: str = "closed",
    health_timeout_s: float = 300,
    by: str | None = None,
) -> Rollout:
    release = session.get(Release, version)
    if release is None:
        raise RolloutError(_("no release {version} (see: {command})").format(
            version=version, command="palaute-server release list"))
    if release.withdrawn_at is not None:
        raise RolloutError(_("release {version} was withdrawn").format(version=version))
    if install_window not in ("closed", "any"):
        raise RolloutError(_("the install window is 'closed' (outside opening hours) or 'any'"))
    active = session.scalars(select(Rollout).where(Rollout.state.in_(ACTIVE))).first()
    if active is not None:
        raise RolloutError(_("rollout {id} of {version} is still {state}: finish or abort it first").format(
            id=active.id, version=active.release_version, state=active.state))
    devices = select_devices(session, target)
    unknown = set(canary) - {d.id for d in devices}
    if unknown:
        raise RolloutError(_("canary kiosks not in the target: {devices}").format(devices=", ".join(sorted(unknown))))
    if not devices:
        raise RolloutError(_("the target has no kiosks"))
    waves = parse_waves(waves)
    rollout = Rollout(release_version=version, target=dict(target), waves=list(waves), wave_healthy_s=wave_healthy_s,
                      max_failures=max_failures, install_window=install_window, health_timeout_s=health_timeout_s,
                      created_by=by)
    session.add(rollout)
    session.flush()
    key = f"rollout-{rollout.id}"
    ordered = [d for d in devices if d.id in canary] + sorted(
        (d for d in devices if d.id not in canary), key=lambda d: _spread(key, d.id))
    bounds = wave_bounds(waves, len(ordered))
    start = 0
    for wave, end in enumerate(bounds):
        for device in ordered[start:end]:
            session.add(RolloutDevice(rollout_id=rollout.id, device_id=device.id, wave=wave,
                                      from_version=device.software_version))
        start = end
    session.flush()
    return rollout


# ----------------------------------------------------------------- publishing a kiosk's target


def _publish_device(session: Session, settings: Settings, publisher: Publisher, device: Device) -> None:
    from fleet_server.fleet.remote_config import publish_device_config

    publish_device_config(session, settings, publisher, device)


# ----------------------------------------------------------------- progress


def has_updater(device: Device) -> bool:
    return "update_state" in (device.last_status or {})


def _observe(member: RolloutDevice, device: Device, version: str, now: datetime) -> bool:
    """Move a targeted kiosk to healthy or failed from its last status; True if it changed."""
    status = device.last_status or {}
    state = status.get("update_state")
    if status.get("software_version") == version and state in ("committed", "idle"):
        member.state, member.finished_at, member.reason = "healthy", now, ""
        return True
    if status.get("update_version") == version and state in ("rolled_back", "failed"):
        member.state, member.finished_at = "failed", now
        member.reason = str(status.get("update_error") or state)[:500]
        return True
    return False


def _target_wave(session: Session, settings: Settings, publisher: Publisher, rollout: Rollout,
                 members: list[RolloutDevice], devices: dict[str, Device], now: datetime) -> None:
    for member in members:
        if member.wave != rollout.current_wave or member.state != "pending":
            continue
        device = devices[member.device_id]
        if device.state == "retired":
            member.state, member.reason = "skipped", "retired"
        elif device.software_version == rollout.release_version:
            member.state, member.reason, member.finished_at = "healthy", "already on this version", now
        elif not has_updater(device):
            member.state = "skipped"
            member.reason = NO_UPDATER
        else:
            member.state, member.targeted_at = "targeted", now
            session.flush()
            _publish_device(session, settings, publisher, device)


def advance(session: Session, settings: Settings, publisher: Publisher, now: datetime | None = None) -> list[str]:
    """One pass over the active rollouts; returns what happened, in words (for the log)."""
    now = now or utcnow()
    happened: list[str] = []
    for rollout in session.scalars(select(Rollout).where(Rollout.state.in_(ACTIVE)).order_by(Rollout.id)):
        members = list(session.scalars(select(RolloutDevice).where(RolloutDevice.rollout_id == rollout.id)))
        devices = {d.id: d for d in session.scalars(select(Device).where(
            Device.id.in_([m.device_id for m in members])))}
        for member in members:
            if member.state == "targeted":
                _observe(member, devices[member.device_id], rollout.release_version, now)
            elif member.state == "healthy" and member.reason != "already on this version":
                # A kiosk that went back after being counted healthy is a failure too.
                status = devices[member.device_id].last_status or {}
                if status.get("update_version") == rollout.release_version and status.get("update_state") in (
                        "rolled_back", "failed"):
                    member.state, member.reason = "failed", str(status.get("update_error") or "rolled back")[:500]
        failed = [m for m in members if m.state == "failed"]
        if rollout.state == "running" and len(failed) > rollout.max_failures:
            rollout.state = "halted"
            rollout.reason = (f"{len(failed)} kiosk(s) failed (more than {rollout.max_failures}): "
                              + "; ".join(f"{m.device_id}: {m.reason}" for m in failed[:3]))
            happened.append(f"rollout {rollout.id} halted: {rollout.reason}")
            continue
        if rollout.state != "running":
            continue
        _target_wave(session, settings, publisher, rollout, members, devices, now)
        wave = [m for m in members if m.wave == rollout.current_wave]
        if any(m.state in ("pending", "targeted") for m in wave):
            rollout.wave_healthy_since = None
            continue
        if rollout.wave_healthy_since is None:
            rollout.wave_healthy_since = now
        last_wave = max(m.wave for m in members)
        if rollout.current_wave >= last_wave:
            rollout.state, rollout.finished_at = "done", now
            happened.append(f"rollout {rollout.id} of {rollout.release_version} done")
        elif now - rollout.wave_healthy_since >= timedelta(seconds=rollout.wave_healthy_s):
            rollout.current_wave += 1
            rollout.wave_healthy_since = None
            _target_wave(session, settings, publisher, rollout, members, devices, now)
            happened.append(f"rollout {rollout.id}: wave {rollout.current_wave + 1} started")
    session.flush()
    return happened


# ----------------------------------------------------------------- IT's controls


def _get(session: Session, rollout_id: int) -> Rollout:
    rollout = session.get(Rollout, rollout_id)
    if rollout is None:
        raise KeyError(rollout_id)
    return rollout


def pause(session: Session, rollout_id: int, reason: str = "paused by IT") -> Rollout:
    rollout = _get(session, rollout_id)
    if rollout.state != "running":
        raise RolloutError(_("rollout {id} is {state}, not running").format(id=rollout_id, state=rollout.state))
    rollout.state, rollout.reason = "paused", reason
    return rollout


def resume(session: Session, rollout_id: int) -> Rollout:
    """Go on with a paused or halted rollout; failures so far count as accepted."""
    rollout = _get(session, rollout_id)
    if rollout.state not in ("paused", "halted"):
        raise RolloutError(_("rollout {id} is {state}: only a paused or halted one resumes").format(
            id=rollout_id, state=rollout.state))
    failed = session.scalars(select(RolloutDevice).where(RolloutDevice.rollout_id == rollout_id,
                                                         RolloutDevice.state == "failed")).all()
    rollout.max_failures = max(rollout.max_failures, len(failed))
    rollout.state, rollout.reason = "running", ""
    return rollout


def abort(session: Session, rollout_id: int, reason: str = "aborted by IT", *,
          settings: Settings | None = None, publisher: Publisher | None = None) -> Rollout:
    """Stop for good: kiosks not yet on the release get their target removed (they stay
    on the version they run; an update under way finishes or rolls back by itself)."""
    rollout = _get(session, rollout_id)
    if rollout.state not in ACTIVE:
        raise RolloutError(_("rollout {id} is {state} already").format(id=rollout_id, state=rollout.state))
    rollout.state, rollout.reason, rollout.finished_at = "aborted", reason, utcnow()
    session.flush()
    if settings is not None and publisher is not None:
        members = session.scalars(select(RolloutDevice).where(RolloutDevice.rollout_id == rollout_id,
                                                              RolloutDevice.state == "targeted")).all()
        for member in members:
            device = session.get(Device, member.device_id)
            if device is not None:
                _publish_device(session, settings, publisher, device)
    return rollout


def abort_rollouts_of(session: Session, version: str, reason: str) -> None:
    for rollout in session.scalars(select(Rollout).where(Rollout.release_version == version,
                                                         Rollout.state.in_(ACTIVE))):
        rollout.state, rollout.reason, rollout.finished_at = "aborted", reason, utcnow()


# ----------------------------------------------------------------- for pages, CLI and alerts


@dataclass(frozen=True)
class WaveProgress:
    number: int
    size: int
    healthy: int
    targeted: int
    failed: int
    skipped: int
    pending: int


@dataclass(frozen=True)
class RolloutView:
    rollout: Rollout
    waves: tuple[WaveProgress, ...]
    failures: tuple[RolloutDevice, ...]
    skipped: tuple[RolloutDevice, ...]


def view(session: Session, rollout: Rollout) -> RolloutView:
    members = list(session.scalars(select(RolloutDevice).where(RolloutDevice.rollout_id == rollout.id)
                                   .order_by(RolloutDevice.wave, RolloutDevice.device_id)))
    waves = []
    for number in sorted({m.wave for m in members}):
        ms = [m for m in members if m.wave == number]
        count = Counter(m.state for m in ms)
        waves.append(WaveProgress(number + 1, len(ms), count["healthy"], count["targeted"], count["failed"],
                                  count["skipped"], count["pending"]))
    return RolloutView(rollout, tuple(waves), tuple(m for m in members if m.state == "failed"),
                       tuple(m for m in members if m.state == "skipped"))


def recent_rollouts(session: Session, limit: int = 5) -> list[Rollout]:
    return list(session.scalars(select(Rollout).order_by(Rollout.id.desc()).limit(limit)))


def halted(session: Session) -> list[tuple[str, str]]:
    """(station, message) per halted rollout, for the ``rollout_halted`` alert (fleet_server.fleet.alerts)."""
    found = []
    for rollout in session.scalars(select(Rollout).where(Rollout.state == "halted")):
        failed = session.scalars(select(RolloutDevice).where(RolloutDevice.rollout_id == rollout.id,
                                                             RolloutDevice.state == "failed")).first()
        device = session.get(Device, failed.device_id) if failed is not None else None
        if device is None:
            continue
        found.append((device.station_id,
                      f"rollout {rollout.id} of release {rollout.release_version} halted: {rollout.reason}"))
    return found
