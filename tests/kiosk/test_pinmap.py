"""The pin map is validated at start, with errors that name the file and the pin."""

from pathlib import Path

import pytest

from kiosk.pinmap import PACKAGED_PINMAP, PinMapError, load_pinmap

ROOT = Path(__file__).resolve().parents[2]

GOOD = """
status_led = 24
[buttons]
1 = 17
2 = 27
3 = 22
4 = 23
[leds]
1 = 5
2 = 6
3 = 16
4 = 26
"""


def _write(tmp_path, text):
    path = tmp_path / "pinmap.toml"
    path.write_text(text)
    return path


def test_packaged_pinmap_is_valid_and_complete():
    pins = load_pinmap()
    assert sorted(pins.buttons) == [1, 2, 3, 4] and sorted(pins.leds) == [1, 2, 3, 4]
    assert pins.status_led is not None and pins.listen_button is not None


def test_the_wiring_table_in_hardware_readme_shows_the_packaged_pin_map():
    """IT wires from hardware/README.md; the kiosk reads kiosk/pinmap.toml: they must agree."""
    table: dict[str, int] = {}
    for line in (ROOT / "hardware" / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[1].isdigit():
            table[cells[0]] = int(cells[1])
    pins = load_pinmap(PACKAGED_PINMAP)
    wanted = {f"Button {v}": pin for v, pin in pins.buttons.items()}
    wanted |= {f"LED {v}": pin for v, pin in pins.leds.items()}
    wanted |= {"Listen button": pins.listen_button, "Status LED": pins.status_led}
    shown = {part: table[row] for part in wanted for row in table if row.startswith(part + " ")}
    assert shown == wanted


def test_good_pinmap_loads(tmp_path):
    pins = load_pinmap(_write(tmp_path, GOOD))
    assert pins.buttons == {1: 17, 2: 27, 3: 22, 4: 23} and pins.status_led == 24 and pins.listen_button is None


@pytest.mark.parametrize(
    "text, expected",
    [
        (GOOD.replace("4 = 26", "4 = 17"), "pin 17 is used twice: [buttons] 1 and [leds] 4"),
        (GOOD.replace("status_led = 24", "status_led = 5"), "pin 5 is used twice: [leds] 1 and status_led"),
        (GOOD.replace("3 = 22", "3 = 99"), "[buttons] 3: pin 99 is not a GPIO pin on a Raspberry Pi (valid BCM numbers: 2-27)"),
        (GOOD.replace("1 = 5", "1 = 1"), "[leds] 1: pin 1 is not a GPIO pin"),
        (GOOD.replace("2 = 27\n", ""), "[buttons] missing smiley 2"),
        (GOOD.replace("4 = 26", "5 = 26"), "[leds] 5: not a smiley value (1..4)"),
        (GOOD.replace("1 = 17", "1 = 'GPIO17'"), "[buttons] 1: 'GPIO17' is not a BCM pin number"),
        (GOOD.replace("status_led", "status_leds"), "unknown entry 'status_leds'"),
        (GOOD.split("[leds]")[0], "missing [leds] table"),
    ],
)
def test_bad_pinmap_names_file_and_entry(tmp_path, text, expected):
    with pytest.raises(PinMapError) as info:
        load_pinmap(_write(tmp_path, text))
    assert expected in str(info.value)
    assert str(info.value).startswith(str(tmp_path / "pinmap.toml"))
