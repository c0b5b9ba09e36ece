"""The kiosk's one typed configuration, read once from a TOML file and passed in.

Why one file and one model: the same Pi image runs at every station, and the only
per-device differences (ids, broker, credentials, paths) live in
/etc/palaute/kiosk.toml. Every module receives the section it needs from
:func:`load_config`; none reads the environment or the file on its own.

Errors name the file, the section and the key, and say what is accepted:
``kiosk.toml: [broker] url: must start with mqtt:// or mqtts://``. Unknown keys
are errors too, so a typo never silently falls back to a default.

Relative paths (outbox, state dir, pin map, CA and client certificates, password
file) are resolved against the directory of the config file, so a config and its
files can be moved together.

Secrets: the broker password is a ``SecretStr`` (its repr is masked) and a
``password_file`` is read only when connecting (:meth:`BrokerSection.secret`).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from palaute_wire.contract import SLUG_PATTERN, Lang
from palaute_wire.mqtt_url import parse_mqtt_url

from .errors import ConfigError

Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceSection(_Section):
    station_id: Slug
    device_id: Slug


class BrokerSection(_Section):
    """How to reach the MQTT broker. TLS is on exactly when the URL is ``mqtts://``."""

    url: str
    fallback_urls: list[str] = Field(
        default_factory=list, max_length=8,
        description="other brokers (e.g. regional ones bridged to the central one) tried in turn when the one in "
        "use is unreachable; same account and TLS settings")
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    ca_file: Path | None = Field(default=None, description="mqtts: CA bundle; the system's CAs when unset")
    client_cert: Path | None = None
    client_key: Path | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    heartbeat_s: float = Field(default=30, gt=0)
    reconnect_min_s: float = Field(default=1, gt=0)
    reconnect_max_s: float = Field(default=10, gt=0)
    """Reconnect backoff cap: low, so a kiosk is back within seconds of its broker."""
    mqtt_version: Literal["5", "3.1.1"] = "5"
    """The MQTT protocol the uplink speaks: "5" (session expiry, reason codes), or "3.1.1" for brokers
    that speak only that (RabbitMQ 3.10's MQTT plugin, NATS). docs/operations.md "MQTT 3.1.1" says
    what changes; the broker then decides how long it keeps the kiosk's session."""

    @field_validator("mqtt_version", mode="before")
    @classmethod
    def _version(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value  # mqtt_version = 5 reads as "5"

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        parse_mqtt_url(url)  # credentials have their own keys here
        return url

    @field_validator("fallback_urls")
    @classmethod
    def _fallback_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            parse_mqtt_url(url)
        return urls

    @model_validator(mode="after")
    def _consistent(self) -> BrokerSection:
        if self.password is not None and self.password_file is not None:
            raise ValueError("password and password_file: give one, not both")
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("client_cert and client_key: give both or neither")
        if (self.client_cert or self.ca_file) and not self.tls:
            raise ValueError("ca_file/client_cert need an mqtts:// url")
        if any(parse_mqtt_url(u).tls != self.tls for u in self.fallback_urls):
            raise ValueError("fallback_urls must all be mqtts:// when url is, and mqtt:// when it is not")
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("reconnect_min_s must not exceed reconnect_max_s")
        return self

    @property
    def tls(self) -> bool:
        return parse_mqtt_url(self.url).tls

    @property
    def urls(self) -> list[str]:
        """``url`` first, then the fallbacks: the order the uplink tries them in."""
        return [self.url, *self.fallback_urls]

    @property
    def host(self) -> str:
        return parse_mqtt_url(self.url).host

    @property
    def port(self) -> int:
        return parse_mqtt_url(self.url).port

    def secret(self) -> str | None:
        """The password, read from ``password_file`` at call time (so rotation needs no edit here)."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_file is not None:
            return self.password_file.read_text().strip()
        return None


class OutboxSection(_Section):
    path: Path = Path("/var/lib/palaute/outbox.db")
    max_events: int = Field(default=100_000, ge=1)
    retention_days: float = Field(default=7, ge=0)


class StateSection(_Section):
    dir: Path = Path("/var/lib/palaute")
    """The last good StationConfig is kept here as JSON, for starts without a network."""


class HardwareSection(_Section):
    pin_map: Path | None = None
    """None: the pin map packaged with the kiosk (kiosk/pinmap.toml)."""
    bounce_time_s: float | None = Field(default=0.05, ge=0, le=1)
    confirm_s: float = Field(default=1.5, gt=0, le=30)
    """How long the pressed answer's LED stays lit."""


class UISection(_Section):
    """Settings of the touch UI. The UI owns this class and may add fields to it."""

    default_lang: Lang = "fi"
    fullscreen: bool = True
    staff_pin: Annotated[str, StringConstraints(pattern=r"^\d{4,12}$")] | None = None
    audio: bool = False
    """Speak the question, the options and the thank-you with espeak-ng (needs a speaker)."""
    thanks_s: float = Field(default=4.0, gt=0, le=30)
    """How long the thank-you screen stays before Home comes back (slow readers need at least 3 s)."""
    staff_hold_s: float = Field(default=3.0, gt=0, le=30)
    """How long staff hold the top-left corner to get the PIN pad."""
    note_rotate_s: float = Field(default=8.0, gt=0, le=600)
    """How long each "you said, we did" note stays on the idle screen."""
    rotation: Literal[0, 90, 180, 270] = 0
    """Turn the picture and the touch input together, clockwise (hardware/README.md "Turning the
    display"): e.g. 90 for a Touch Display 2 (720x1280 portrait as delivered) mounted landscape."""


class UpdatesSection(_Section):
    """Software updates from the fleet server (kiosk.updater, a service of its own)."""

    release_public_key: str | None = None
    """base64 ed25519 public key of the operator's release key; no key: no updates."""
    releases_root: Path = Path("/opt/palaute/releases")
    """<root>/<version> are the installed versions, <root>/current the one that runs."""
    restart_command: tuple[str, ...] = ("systemctl", "restart", "palaute-kiosk.service")
    restarts_command: tuple[str, ...] = ("systemctl", "show", "palaute-kiosk.service", "--property=NRestarts",
                                         "--value")
    """Prints how many times systemd has restarted the kiosk by itself (after a crash or a watchdog kill)."""
    crash_loop_restarts: int = Field(default=3, ge=1, le=100)
    """A version on trial that systemd had to restart this many times is rolled back at once,
    without waiting for the rest of its health time (empty ``restarts_command``: it waits)."""
    check_interval_s: float = Field(default=30, gt=0, le=3600)
    ca_file: Path | None = None
    """CA bundle for an https release URL; the system's CAs when unset."""
    exit_after_commit: bool = True
    """After a successful update the updater exits so systemd starts it again from the new version."""


class SimulateSection(_Section):
    """Only used by ``--simulate``: how the simulated patients press."""

    presses_per_minute: float = Field(default=30, gt=0, le=600_000)
    mix: tuple[float, float, float, float] = (0.06, 0.09, 0.35, 0.50)
    """Relative weights of smileys 1..4 (very unhappy .. very happy)."""
    followup_share: float = Field(default=0.3, ge=0, le=1)
    seed: int | None = None
    clock_synced: bool = True
    """What the simulated kiosk reports as NTP state (a dev machine's clock is usually fine)."""

    @field_validator("mix")
    @classmethod
    def _weights(cls, mix: tuple[float, ...]) -> tuple[float, ...]:
        if any(w < 0 for w in mix) or sum(mix) <= 0:
            raise ValueError("four non-negative weights for smileys 1..4, not all zero")
        return mix


class KioskConfig(_Section):
    device: DeviceSection
    broker: BrokerSection
    outbox: OutboxSection = OutboxSection()
    state: StateSection = StateSection()
    hardware: HardwareSection = HardwareSection()
    ui: UISection = UISection()
    simulate: SimulateSection = SimulateSection()
    updates: UpdatesSection = UpdatesSection()
    source: str = Field(default="<memory>", exclude=True)
    """Where the config came from, for messages."""


_PATH_FIELDS = {
    "broker": ("password_file", "ca_file", "client_cert", "client_key"),
    "outbox": ("path",),
    "state": ("dir",),
    "hardware": ("pin_map",),
    "updates": ("releases_root", "ca_file"),
}


def load_config(path: str | Path) -> KioskConfig:
    """Read, validate and return the config; raise :class:`ConfigError` naming file and field."""
    path = Path(path)
    name = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{name}: no such file (see deploy/kiosk.example.toml)") from None
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{name}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{name}: not UTF-8 text") from None
    return parse_config(raw, source=name, base_dir=path.parent)


def parse_config(raw: dict[str, Any], *, source: str = "<memory>", base_dir: Path | None = None) -> KioskConfig:
    """Validate an already-parsed TOML document (tests and tools build configs this way)."""
    if base_dir is not None:
        raw = _resolve_paths(raw, base_dir)
    try:
        config = KioskConfig.model_validate({**raw, "source": source})
    except ValidationError as exc:
        raise ConfigError("\n".join(_describe(source, err) for err in exc.errors())) from None
    _check_files(config)
    return config


def _resolve_paths(raw: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    out = dict(raw)
    for section, keys in _PATH_FIELDS.items():
        values = out.get(section)
        if not isinstance(values, dict):
            continue
        values = dict(values)
        for key in keys:
            value = values.get(key)
            if isinstance(value, str) and value and not Path(value).is_absolute():
                values[key] = str(base_dir / value)
        out[section] = values
    return out


def _describe(source: str, err: ErrorDetails) -> str:
    loc = [str(p) for p in err["loc"]]
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key (check the spelling against deploy/kiosk.example.toml)"
        if len(loc) == 1:
            msg = "unknown section"
    elif err["type"] == "missing":
        msg = "missing section" if len(loc) == 1 else "required, but missing"
    if not loc:
        return f"{source}: {msg}"
    where = f"[{loc[0]}]"
    if len(loc) > 1:
        where += " " + ".".join(loc[1:])
    return f"{source}: {where}: {msg}"


def _check_files(config: KioskConfig) -> None:
    """Files named in the config must exist now, not fail at the first reconnect."""
    broker = config.broker
    for key in ("password_file", "ca_file", "client_cert", "client_key"):
        value = getattr(broker, key)
        if value is not None and not value.is_file():
            raise ConfigError(f"{config.source}: [broker] {key}: {value} does not exist")
    pin_map = config.hardware.pin_map
    if pin_map is not None and not pin_map.is_file():
        raise ConfigError(f"{config.source}: [hardware] pin_map: {pin_map} does not exist")
