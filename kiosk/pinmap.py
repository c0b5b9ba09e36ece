"""The pin map: which BCM GPIO pin each button and LED is wired to.

Why a file and not constants: IT assembles kiosks from whatever parts are at hand
and sometimes has to move a wire; they edit a TOML file, not code. A wrong map
must fail at start with a message that names the file and the entry, because a
kiosk whose "very happy" button records "unhappy" is worse than one that is off.

The map that ships with the kiosk is ``kiosk/pinmap.toml`` (package data, so an
installed kiosk finds it without the repository; hardware/README.md shows the
same pins as a wiring table). ``[hardware] pin_map`` in kiosk.toml points to
another file when a kiosk is wired differently.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from palaute_wire.contract import SMILEY_VALUES

from .errors import PinMapError

PACKAGED_PINMAP = Path(__file__).with_name("pinmap.toml")

GPIO_PINS = range(2, 28)
"""BCM numbers a Raspberry Pi (40-pin header, any model) exposes as GPIO."""

_TOP_KEYS = {"status_led", "listen_button", "buttons", "leds"}


@dataclass(frozen=True)
class PinMap:
    buttons: dict[int, int]
    """Smiley value (1..4) -> BCM pin of its button."""
    leds: dict[int, int]
    """Smiley value (1..4) -> BCM pin of its LED."""
    status_led: int | None = None
    listen_button: int | None = None
    source: str = "<memory>"

    def all_pins(self) -> list[tuple[str, int]]:
        """(entry name, pin) for every wired part, in file order."""
        out = [(f"[buttons] {v}", p) for v, p in sorted(self.buttons.items())]
        out += [(f"[leds] {v}", p) for v, p in sorted(self.leds.items())]
        if self.status_led is not None:
            out.append(("status_led", self.status_led))
        if self.listen_button is not None:
            out.append(("listen_button", self.listen_button))
        return out


def load_pinmap(path: str | Path | None = None) -> PinMap:
    """Read and validate a pin map; None means the packaged default."""
    path = Path(path) if path is not None else PACKAGED_PINMAP
    name = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PinMapError(f"{name}: no such pin map file") from None
    except tomllib.TOMLDecodeError as exc:
        raise PinMapError(f"{name}: not valid TOML: {exc}") from None
    return parse_pinmap(raw, source=name)


def parse_pinmap(raw: dict, *, source: str = "<memory>") -> PinMap:
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise PinMapError(
            f"{source}: unknown entry {min(unknown)!r} (known: {', '.join(sorted(_TOP_KEYS))})"
        )
    buttons = _smiley_table(raw, "buttons", source)
    leds = _smiley_table(raw, "leds", source)
    status_led = _optional_pin(raw, "status_led", source)
    listen_button = _optional_pin(raw, "listen_button", source)
    pinmap = PinMap(buttons, leds, status_led, listen_button, source)
    seen: dict[int, str] = {}
    for entry, pin in pinmap.all_pins():
        if pin in seen:
            raise PinMapError(f"{source}: pin {pin} is used twice: {seen[pin]} and {entry}")
        seen[pin] = entry
    return pinmap


def _smiley_table(raw: dict, table: str, source: str) -> dict[int, int]:
    values = raw.get(table)
    if not isinstance(values, dict):
        raise PinMapError(f"{source}: missing [{table}] table (smiley value 1..4 = BCM pin)")
    out: dict[int, int] = {}
    for key, pin in values.items():
        if not key.isdigit() or int(key) not in SMILEY_VALUES:
            raise PinMapError(f"{source}: [{table}] {key}: not a smiley value (1..4)")
        out[int(key)] = _check_pin(pin, f"[{table}] {key}", source)
    for value in SMILEY_VALUES:
        if value not in out:
            raise PinMapError(
                f"{source}: [{table}] missing smiley {value} ({SMILEY_VALUES[value]}); all four 1..4 are needed"
            )
    return out


def _optional_pin(raw: dict, key: str, source: str) -> int | None:
    if key not in raw:
        return None
    return _check_pin(raw[key], key, source)


def _check_pin(pin: object, entry: str, source: str) -> int:
    if isinstance(pin, bool) or not isinstance(pin, int):
        raise PinMapError(f"{source}: {entry}: {pin!r} is not a BCM pin number")
    if pin not in GPIO_PINS:
        raise PinMapError(
            f"{source}: {entry}: pin {pin} is not a GPIO pin on a Raspberry Pi "
            f"(valid BCM numbers: {GPIO_PINS.start}-{GPIO_PINS.stop - 1})"
        )
    return pin
