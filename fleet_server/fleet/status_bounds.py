"""The contract's bounds applied to status values already stored on a device row."""

from __future__ import annotations

import math
from typing import Any

from palaute_wire import contract

BOUNDS: dict[str, tuple[float, float]] = {
    "uptime_s": (0, contract.MAX_DURATION_S),
    "oldest_queued_age_s": (0, contract.MAX_DURATION_S),
    "cpu_temp_c": contract.CPU_TEMP_RANGE_C,
    "disk_free_mb": (0, contract.MAX_DISK_MB),
    "queue_depth": (0, contract.MAX_COUNT),
    "shed_count": (0, contract.MAX_COUNT),
    "config_version": (0, contract.MAX_COUNT),
    "last_seq": (0, contract.MAX_SEQ),
}
"""The contract's bounds for the device row's status columns (see ``sane``)."""


def sane(device: Any, name: str) -> Any:
    """``device.<name>`` if it is a finite number within the contract's bounds, else None.

    Why: the ingest refuses such values now, but rows stored before (or written by
    hand) may hold Infinity or 1e300; one such row must not break the devices page,
    the API or the alert loop for everyone. The pages show such a value as unknown.
    """
    return sane_value(name, getattr(device, name))


def sane_value(name: str, value: Any) -> Any:
    """``value`` for the status column ``name`` if finite and within bounds, else None."""
    if value is None:
        return None
    lo, hi = BOUNDS[name]
    try:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value if lo <= value <= hi else None
    except TypeError:
        return None


def finite_json(value: Any) -> Any:
    """A stored JSON document with every non-finite number replaced by None (JSON has no Infinity)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite_json(v) for v in value]
    return value
