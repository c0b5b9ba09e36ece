"""The last good station config, kept on disk between starts.

Why: a kiosk that boots without a network (or before the broker re-delivers the
retained config) must still show the station's own survey and language, not the
factory default. The file is replaced atomically (write, fsync, rename), so a
power cut leaves either the old or the new config, never half of one.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pydantic import ValidationError

from palaute_wire.contract import StationConfig, encode

_LOGGER = logging.getLogger(__name__)

STATION_CONFIG_FILE = "station-config.json"


def station_config_path(state_dir: Path) -> Path:
    return Path(state_dir) / STATION_CONFIG_FILE


def load_station_config(state_dir: Path, station_id: str) -> StationConfig | None:
    """The persisted config for this station, or None (then the kiosk uses the default survey)."""
    path = station_config_path(state_dir)
    try:
        config = StationConfig.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValidationError, ValueError) as exc:
        _LOGGER.warning("ignoring unreadable %s (%s); using the default survey", path, exc)
        return None
    if config.station_id != station_id:
        _LOGGER.warning(
            "%s is for station %s, this kiosk is %s; using the default survey", path, config.station_id, station_id
        )
        return None
    return config


def save_station_config(state_dir: Path, config: StationConfig) -> Path:
    path = station_config_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(encode(config))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return path
