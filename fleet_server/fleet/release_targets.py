"""The release target in one kiosk's config: which release a rollout gave it.

Read by fleet_server.fleet.remote_config whenever it publishes a kiosk's config, so
a config change never takes a target away; set and taken back by
fleet_server.fleet.rollouts.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet_server.core.settings import Settings
from fleet_server.models import Release, Rollout, RolloutDevice
from palaute_wire.contract import ReleaseTarget


def release_url(settings: Settings, version: str) -> str:
    base = settings.kiosk_release_url or f"http://{settings.http_host}:{settings.http_port}"
    return f"{base.rstrip('/')}/kiosk/v1/releases/{version}/"


def release_target_for(session: Session, settings: Settings, device_id: str) -> ReleaseTarget | None:
    """The release target in this kiosk's config: from the newest rollout that sent it one
    (not aborted, release not withdrawn); None = stay on the version it runs."""
    row = session.execute(
        select(RolloutDevice, Rollout, Release)
        .join(Rollout, Rollout.id == RolloutDevice.rollout_id)
        .join(Release, Release.version == Rollout.release_version)
        .where(RolloutDevice.device_id == device_id, RolloutDevice.state.in_(("targeted", "healthy", "failed")),
               Rollout.state != "aborted", Release.withdrawn_at.is_(None))
        .order_by(Rollout.id.desc()).limit(1)
    ).first()
    if row is None:
        return None
    _, rollout, release = row
    return ReleaseTarget(device_id=device_id, version=release.version, url=release_url(settings, release.version),
                         manifest=release.manifest, signature=release.signature,
                         install_window=rollout.install_window,  # type: ignore[arg-type]
                         health_timeout_s=rollout.health_timeout_s, rollout_id=rollout.id)
