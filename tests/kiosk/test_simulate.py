"""The simulator presses through the mock pins, and follow-ups answer their smiley."""

import subprocess
import sys
from pathlib import Path

from kiosk.app import Kiosk
from kiosk.simulate import Simulator
from palaute_wire.contract import FeedbackEvent
from palaute_wire.surveys import default_station_config, followup_for
from tests.support.kiosk_support import kiosk_config, kiosk_raw, write_toml

CLI = str(Path(sys.executable).with_name("palaute-kiosk"))


def _events(kiosk):
    return [FeedbackEvent.model_validate_json(p.payload) for p in kiosk.outbox.pending(10_000)]


def test_simulated_presses_go_through_the_pins_and_followups_answer_their_smiley(tmp_path, mock_pins):
    config = kiosk_config(tmp_path, "mqtt://127.0.0.1:1",
                          simulate={"presses_per_minute": 600_000, "followup_share": 0.5, "seed": 7})
    with Kiosk(config, clock_synced_override=True) as kiosk:
        kiosk.start()
        for pin in kiosk.pinmap.buttons.values():
            mock_pins.pin(pin).clear_states()
        result = Simulator(kiosk, config.simulate, count=200).run()
        events = _events(kiosk)
        # Every press went through a button pin: 200 falling edges in all.
        falls = sum(
            sum(1 for s in mock_pins.pin(pin).states[1:] if s.state == 0) for pin in kiosk.pinmap.buttons.values()
        )
    assert falls == 200
    smileys = {e.event_id: e for e in events if e.kind == "smiley"}
    followups = [e for e in events if e.kind == "followup"]
    assert result.presses == len(smileys) == 200 and result.followups == len(followups) > 0
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    survey = default_station_config("kalvia")
    for f in followups:
        smiley = smileys[f.answer_to]
        question = followup_for(survey, smiley.value)
        assert f.question_id == question.id and f.value in {o.id for o in question.options}
        assert f.lang == smiley.lang and f.seq > smiley.seq
    counts = {v: sum(1 for e in smileys.values() if e.value == v) for v in (1, 2, 3, 4)}
    assert counts[4] > counts[1], counts  # the default mix leans happy


def test_same_seed_gives_the_same_presses(tmp_path, mock_pins):
    runs = []
    for name in ("a", "b"):
        config = kiosk_config(tmp_path / name, "mqtt://127.0.0.1:1", simulate={"presses_per_minute": 600_000})
        with Kiosk(config, clock_synced_override=True) as kiosk:
            kiosk.start()
            Simulator(kiosk, config.simulate, count=50, seed=3).run()
            runs.append([(e.kind, e.value, e.lang) for e in _events(kiosk)])
    assert runs[0] == runs[1]


def test_check_config_reports_ok_and_errors_with_exit_codes(tmp_path):
    good = write_toml(tmp_path / "kiosk.toml", kiosk_raw(tmp_path, "mqtt://127.0.0.1:1883"))
    ok = subprocess.run([CLI, "check-config", str(good)], check=False, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "OK" in ok.stdout and "kalvia/kalvia-1" in ok.stdout
    bad = write_toml(tmp_path / "bad.toml", kiosk_raw(tmp_path, "tcp://127.0.0.1:1883"))
    out = subprocess.run([CLI, "check-config", str(bad)], check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert f"{bad}: [broker] url: must start with mqtt:// or mqtts://" in out.stderr
    pins = tmp_path / "pins.toml"
    pins.write_text("[buttons]\n1 = 17\n2 = 17\n3 = 22\n4 = 23\n[leds]\n1 = 5\n2 = 6\n3 = 16\n4 = 26\n")
    raw = kiosk_raw(tmp_path, "mqtt://127.0.0.1:1883", hardware={"pin_map": str(pins)})
    out = subprocess.run([CLI, "check-config", str(write_toml(tmp_path / "p.toml", raw))],
                         check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "pin 17 is used twice" in out.stderr
