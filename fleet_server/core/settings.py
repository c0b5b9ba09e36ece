"""The fleet server's settings: one typed class, loaded once, passed in.

Sources, highest priority first: keyword overrides (tests, CLI options), environment
variables with the ``PALAUTE_`` prefix, an optional config file named by
``PALAUTE_CONFIG_FILE`` (TOML with the bare field names, or a ``.env`` file with
``PALAUTE_``-prefixed names), then the defaults below. This is the only module
that reads the environment; everything else receives a ``Settings``.

A bad value raises ``SettingsError`` whose message names the setting as the
operator would write it (``PALAUTE_MQTT_URL: ...``), so a typo in a systemd unit is
found from the first log line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from fleet_server.core.errors import SettingsError
from palaute_wire.mqtt_url import parse_mqtt_url

ENV_PREFIX = "PALAUTE_"
CONFIG_FILE_ENV = "PALAUTE_CONFIG_FILE"


class Settings(BaseSettings):
    """Everything the fleet server can be told; field ``x`` is ``PALAUTE_X`` in the environment."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", frozen=True, validate_default=True
    )

    database_url: str = Field(
        default="sqlite:///./var/palaute.db",
        description="SQLAlchemy URL; SQLite is the zero-setup default, PostgreSQL the production one",
    )

    mqtt_url: str = Field(default="mqtt://127.0.0.1:1883", description="mqtt://host[:port] or mqtts://host[:port]")
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    mqtt_ca_file: Path | None = Field(default=None, description="CA bundle for mqtts://; system CAs when unset")
    mqtt_client_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=48,
        description="the ingest's persistent session on the broker; every server process of one deployment "
        "uses the same id, and only the one holding the ingest lock connects (the others stand by). "
        "Unset: palaute-ingest-<8 hex digits derived from the database>, so two deployments on one broker "
        "never share a session by accident",
    )
    mqtt_shared_group: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="not recommended (docs/operations.md 'Several server processes'): subscribe as "
        "$share/<group>/... with a non-persistent session, each process with its own client id",
    )
    mqtt_session_expiry_s: int = Field(
        default=7 * 24 * 3600,
        ge=60,
        description="how long the broker keeps queueing for the ingest while it is away",
    )
    mqtt_version: Literal["5", "3.1.1"] = Field(
        default="5",
        description="the MQTT protocol of the ingest and the publisher: 5, or 3.1.1 for a broker that speaks only "
        "that (RabbitMQ 3.10); with 3.1.1 the broker's own setting bounds how long it keeps the ingest's session "
        "(docs/operations.md 'MQTT 3.1.1')",
    )
    mqtt_keepalive_s: int = Field(default=30, ge=5, le=3600)
    mqtt_reconnect_max_s: int = Field(
        default=5, ge=1, le=3600,
        description="cap of the reconnect backoff (broker and database): low, the broker is on the same host")

    healthz_stall_s: float = Field(
        default=30, gt=0, le=3600,
        description="/healthz says 503 'ingest stalled' when messages wait and nothing was committed this long",
    )

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=1, le=65535)

    ingest_batch_size: int = Field(
        default=500, ge=1, le=10_000, description="most MQTT messages committed in one transaction"
    )
    ingest_writers: int = Field(
        default=2, ge=1, le=8,
        description="transactions the ingest keeps in flight on PostgreSQL, each on its own connection "
                    "(SQLite takes one writer at a time: always 1 there)",
    )
    ingest_flush_interval_s: float = Field(
        default=0.01,
        ge=0,
        le=10,
        description="how long the writer lingers for more messages before committing a partial batch",
    )

    # ---- fleet operations (fleet_server.fleet.provisioning, .alerts): broker accounts, bundles, alerts
    broker_password_file: Path | None = Field(
        default=None, description="Mosquitto password_file the server regenerates from the device registry"
    )
    broker_acl_file: Path | None = Field(default=None, description="Mosquitto acl_file, regenerated likewise")
    broker_pid_file: Path | None = Field(default=None, description="SIGHUP this Mosquitto after rewriting them")
    broker_reload_command: str | None = Field(
        default=None, description="e.g. 'systemctl reload mosquitto'; wins over broker_pid_file"
    )
    broker_auth_token: SecretStr | None = Field(
        default=None, description="turns on /broker-auth (brokers asking the registry over HTTP); the broker "
        "sends it as Authorization: Bearer <token>; at least 32 random characters")
    kiosk_broker_url: str | None = Field(
        default=None, description="broker URL written into kiosk bundles, e.g. mqtts://mqtt.example.fi:8883"
    )
    kiosk_ca_file: Path | None = Field(default=None, description="CA certificate put into bundles (else mqtt_ca_file)")
    kiosk_wheelhouse: Path | None = Field(
        default=None, description="the kiosk wheelhouse put into bundles (palaute-server device wheelhouse DIR)"
    )
    # ---- kiosk software updates (fleet_server.fleet.releases, .rollouts)
    release_store_dir: Path = Field(default=Path("var/releases"), description="where release files are kept")
    release_public_key: str | None = Field(
        default=None, description="base64 ed25519 public key of the operator's release key; release add checks it"
    )
    release_accel_redirect: str | None = Field(
        default=None, pattern=r"^/.*/$",
        description="nginx's internal location for release_store_dir, e.g. /_palaute_releases/: the server checks "
        "the kiosk and nginx sends the file (X-Accel-Redirect, Range included); unset: the server sends it",
    )
    kiosk_release_url: str | None = Field(
        default=None, description="how kiosks reach this server's /kiosk/v1/releases/, e.g. https://fleet.example.fi"
    )
    alert_check_interval_s: float = Field(default=30, gt=0, description="how often the alert rules run")
    # ---- retention (fleet_server.fleet.retention): 0 keeps for ever; the hourly rollups are always kept
    retention_answers_days: int = Field(
        default=0, ge=0, description="raw answers older than this (by answer time) are removed; on PostgreSQL "
        "whole months are dropped once they are entirely past it. 0: kept for ever (the default: removing "
        "citizens' answers is the municipality's decision)")
    retention_dead_letters_days: int = Field(default=30, ge=0, description="refused messages (up to 1 MiB each)")
    retention_presence_days: int = Field(default=90, ge=0, description="online/offline history of the kiosks")
    retention_alerts_days: int = Field(default=365, ge=0, description="cleared alerts and their deliveries")
    retention_gaps_days: int = Field(default=90, ge=0, description="resolved sequence gaps")
    retention_comments_days: int = Field(
        default=90, ge=1, le=3650, description="open comments from the web page (already masked) are deleted "
        "this many days after they came; never kept for ever (docs/counting.md 'Open comments')")
    leader_poll_s: float = Field(
        default=2, gt=0, le=60, description="how often a standby process asks for the fleet-loop lock "
        "(the takeover time after the leader dies)"
    )
    alert_heartbeat_timeout_s: float = Field(
        default=120, gt=0, description="no status for this long counts as offline even without a Last Will"
    )
    alert_offline_after_min: float = Field(default=10, ge=0, description="offline this long while open: alert")
    alert_backlog_events: int = Field(default=50, ge=1, description="queue this deep and growing: alert")
    alert_backlog_age_min: float = Field(default=30, gt=0, description="oldest queued event this old: alert")
    alert_disk_low_mb: float = Field(default=500, ge=0)
    alert_temp_high_c: float = Field(default=75)
    alert_no_feedback_hours: float = Field(default=24, gt=0, description="open this long without feedback: alert")
    alert_email_to: str | None = Field(default=None, description="comma-separated recipients of alert e-mails")
    alert_email_from: str = "palaute@localhost"
    alert_email_language: Literal["fi", "sv", "en"] = Field(
        default="fi", description="the language of alert e-mails (the recipients are addresses, not users)")
    report_send_hour: int = Field(
        default=6, ge=0, le=23, description="monthly reports go out from this local hour on the 1st "
        "(to the subscribers, fleet_server.fleet.report_mail); the From address is alert_email_from")
    alert_webhook_url: str | None = Field(default=None, description="alerts are POSTed here as JSON")
    alert_retry_min_s: float = Field(
        default=60, gt=0, description="first wait before a channel that failed is tried again (doubles)"
    )
    alert_retry_max_s: float = Field(default=3600, gt=0, description="longest wait between a channel's retries")
    gap_grace_s: float = Field(
        default=120, ge=0, description="a seq gap younger than this may still be in flight: not asked for yet; "
        "also how long after a resend's acknowledgement a gap still there counts as unrecoverable"
    )
    gap_resend_interval_s: float = Field(
        default=900, gt=0, description="at most one automatic resend request per kiosk this often"
    )
    gap_check_interval_s: float = Field(
        default=300, ge=0, description="how often the fleet loop looks for seq gaps (the first check after "
        "a start scans the (device_id, seq) index, ~1 s per million events; later ones ~1 ms per kiosk)"
    )
    gap_check_soon_s: float = Field(
        default=15, gt=0, description="a gap check this soon after the server starts or the broker connection "
        "comes back, and this often while open gaps wait (fleet_server.fleet.loop.GapSchedule)"
    )
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None

    log_level: str = Field(default="info", pattern=r"^(?i:debug|info|warning|error|critical)$")

    # ------------------------------------------------ dashboard sign-in and results (fleet_server.auth)
    mode: Literal["production", "development", "demo"] = Field(
        default="production",
        description="development/demo generate a throwaway session secret when none is set; "
        "production refuses to start without one",
    )
    session_secret: SecretStr | None = Field(
        default=None,
        description="signs dashboard session cookies; at least 32 random characters, e.g. "
        "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'",
    )
    session_max_age_s: int = Field(default=8 * 3600, ge=300, le=30 * 24 * 3600, description="sign-in lasts this long")
    cookie_secure: bool | None = Field(
        default=None,
        description="Secure flag on cookies; unset: set when the request came over https",
    )
    login_max_failures: int = Field(default=5, ge=1, le=1000, description="failed sign-ins per name or address ...")
    login_window_s: int = Field(default=900, ge=1, le=86_400, description="... within this many seconds, then wait")
    min_responses: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="figures based on fewer responses show as 'too few responses' (small-count rule)",
    )
    # The web survey behind a station's QR code (fleet_server.channels.web_survey, docs/counting.md).
    web_link_days: int = Field(default=62, ge=1, le=400, description="a QR code's signed link works this many days")
    web_public_url: str | None = Field(
        default=None, pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
        description="how patients' phones reach this server's /s/ pages, e.g. https://palaute.example.fi: the "
        "links in the kiosks' QR codes (renewed half-way through web_link_days); unset: kiosks show no QR code")
    web_answers_per_address_hour: int = Field(
        default=20, ge=1, le=100_000, description="web answers one client address may give per hour")
    web_answers_per_station_hour: int = Field(
        default=600, ge=1, le=1_000_000, description="web answers one station may receive per hour")
    web_comment_max_chars: int = Field(
        default=500, ge=50, le=2000, description="the longest open comment the web page takes, in characters "
        "(stations switch comments on one by one; fleet_server.channels.comments)")
    # Public results pages, their embed variant and open data (fleet_server.web.public_pages, docs/api.md).
    public_cache_s: float = Field(
        default=60, ge=0, le=3600, description="a public page is built at most this often per station and "
        "language in each server process (0: every time); coordinators' changes in this process apply at once")
    public_frame_ancestors: str = Field(
        default="", pattern=r"^[A-Za-z0-9 .:/*_-]*$", description="sites that may show the embed variant "
        "(/public/.../embed) in an iframe, space-separated CSP sources, e.g. 'https://www.soite.fi'; "
        "empty: no site may (every other page always refuses framing)")
    public_data_licence: str = Field(
        default="CC BY 4.0", max_length=200, description="the licence the open-data JSON names")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources = [init_settings, env_settings, dotenv_settings]
        if settings_cls.model_config.get("toml_file"):
            sources.append(TomlConfigSettingsSource(settings_cls))
        return tuple(sources)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(
                f"{value!r} is not a SQLAlchemy URL (e.g. sqlite:///./var/palaute.db or "
                "postgresql+psycopg://user@host/db)"
            ) from None
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError(f"backend {url.get_backend_name()!r} is not supported (use sqlite or postgresql)")
        return value

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_url(cls, value: str) -> str:
        parse_mqtt_url(value, credentials=True)
        return value

    # ---------------------------------------------------------------- derived

    @property
    def ingest_client_id(self) -> str:
        """``mqtt_client_id``, or one derived from the database (same database, same id)."""
        return self.mqtt_client_id or f"palaute-ingest-{self.deployment_id}"

    @property
    def deployment_id(self) -> str:
        """8 hex digits naming the database: server processes sharing one are one deployment."""
        import hashlib

        from sqlalchemy.engine import make_url

        url = make_url(self.database_url)
        if url.get_backend_name() == "sqlite":
            where = str(Path(url.database or ":memory:").resolve()) if url.database not in (None, "", ":memory:") \
                else ":memory:"
        else:
            where = f"{url.host or url.query.get('host', '')}:{url.port or 5432}/{url.database}"
        return hashlib.sha256(where.encode()).hexdigest()[:8]

    @property
    def mqtt_host(self) -> str:
        return parse_mqtt_url(self.mqtt_url, credentials=True).host

    @property
    def mqtt_port(self) -> int:
        return parse_mqtt_url(self.mqtt_url, credentials=True).port

    @property
    def mqtt_tls(self) -> bool:
        return parse_mqtt_url(self.mqtt_url, credentials=True).tls

    @property
    def mqtt_credentials(self) -> tuple[str | None, str | None]:
        """Username and password: the explicit settings win over ``user:pass@`` in the URL."""
        url = parse_mqtt_url(self.mqtt_url, credentials=True)
        username = self.mqtt_username or url.username
        if self.mqtt_password is not None:
            password: str | None = self.mqtt_password.get_secret_value()
        else:
            password = url.password
        return username, password


def _setting_name(loc: tuple[Any, ...]) -> str:
    field = str(loc[0]) if loc else "?"
    return f"{ENV_PREFIX}{field.upper()}"


def load_settings(
    config_file: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build the settings from overrides, the environment and the optional config file.

    ``environ`` defaults to ``os.environ``; tests pass their own mapping.
    """
    env = os.environ if environ is None else environ
    path = config_file or env.get(CONFIG_FILE_ENV) or None
    settings_cls: type[Settings] = Settings
    init: dict[str, Any] = dict(overrides)
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise SettingsError(f"{CONFIG_FILE_ENV}: {path} does not exist or is not a file")
        if path.suffix == ".toml":
            settings_cls = type(
                "Settings", (Settings,), {"model_config": {**Settings.model_config, "toml_file": path}}
            )
        else:
            init["_env_file"] = path
    if environ is not None:
        # pydantic-settings reads os.environ itself; hand it only the mapping we were given,
        # and treat it as it treats os.environ: PALAUTE_* names that are no setting (the
        # config file's name, the test suite's PALAUTE_TEST_*) are not ours to refuse.
        wanted = {k[len(ENV_PREFIX):].lower(): v for k, v in env.items() if k.startswith(ENV_PREFIX)}
        for key, value in wanted.items():
            if key in Settings.model_fields:
                init.setdefault(key, value)
    try:
        return settings_cls(**init)
    except ValidationError as exc:
        problems = [f"{_setting_name(err['loc'])}: {err['msg']}" for err in exc.errors()]
        source = f" (config file {path})" if path else ""
        raise SettingsError("bad settings" + source + ":\n  " + "\n  ".join(problems)) from None
