"""Response models of the JSON API: the shapes scripts and reporting tools rely on (docs/api.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from fleet_server.fleet.status_bounds import BOUNDS, finite_json, sane_value


class SmileyCounts(BaseModel):
    """Smiley answers per value: 1 very unhappy .. 4 very happy."""

    model_config = ConfigDict(populate_by_name=True)

    one: int = Field(alias="1", serialization_alias="1")
    two: int = Field(alias="2", serialization_alias="2")
    three: int = Field(alias="3", serialization_alias="3")
    four: int = Field(alias="4", serialization_alias="4")


class StationOut(BaseModel):
    station_id: str
    name: str
    created_at: datetime
    suppressed: bool = Field(description="true: fewer smiley answers than the minimum; the figures are null")
    total: int | None = Field(description="smiley answers, all time")
    counts: SmileyCounts | None
    satisfaction: float | None
    followups: int | None = Field(description="follow-up answers, all time")
    devices: int = Field(description="devices not retired")
    devices_online: int
    last_event_at: datetime | None


class DeviceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    station_id: str
    name: str | None
    state: Literal["provisioned", "active", "retired"]
    online: bool
    last_seen_at: datetime | None
    last_event_at: datetime | None
    status_sent_at: datetime | None
    software_version: str | None
    uptime_s: float | None
    queue_depth: int | None
    oldest_queued_age_s: float | None
    shed_count: int | None
    last_seq: int | None
    clock_synced: bool | None
    config_version: int | None
    cpu_temp_c: float | None
    disk_free_mb: float | None
    ip: str | None
    last_status: dict[str, Any] | None

    @field_validator(*BOUNDS, mode="before")
    @classmethod
    def _in_bounds(cls, value: Any, info: ValidationInfo) -> Any:
        """A stored value outside the contract's bounds (Infinity, 1e300) is reported as null, not a 500."""
        return sane_value(info.field_name or "", value)

    @field_validator("last_status", mode="before")
    @classmethod
    def _finite(cls, value: Any) -> Any:
        return finite_json(value)


class DeadLetterOut(BaseModel):
    id: int
    received_at: datetime
    topic: str
    reason: str = Field(description="bad_topic, oversize, bad_json, unsupported_version, schema, topic_mismatch, "
                        "unexpected_channel, device_station_mismatch, device_retired, seq_jump or ingest_error")
    detail: str
    size: int = Field(description="payload size as received, bytes")
    payload_encoding: Literal["utf-8", "base64"]
    payload: str = Field(description="the raw payload: text when it is UTF-8, else base64")
    payload_truncated: bool = Field(description="true when only the first max_payload_chars are shown")
    count: int = Field(default=1, description="how many times this same message was refused")
    last_seen_at: datetime | None = Field(default=None, description="when it was last refused")
    stored_payload: str | None = Field(
        default=None, description="conflicting_duplicate: the copy stored first under the same event id (JSON)"
    )


class DeadLetterPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[DeadLetterOut]


class ErrorOut(BaseModel):
    detail: Any = Field(description="what was wrong and what to do")


def _error(text: str) -> dict[str, Any]:
    return {"description": text, "model": ErrorOut}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("a parameter that makes no sense (a period that ends before it starts, ...): detail says which"),
    401: _error("not signed in and no valid API token (WWW-Authenticate: Bearer)"),
    403: _error("your role may not do this, or not for this station"),
    404: _error("no such station, device or record"),
}
"""Errors every API route may answer; the OpenAPI document lists them (schemathesis checks it)."""

FLEET_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    409: _error("the device is retired"),
    503: _error("saved but not published, or not sent: the broker is unreachable"),
}
