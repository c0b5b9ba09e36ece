"""The README's first command: ``palaute-server demo`` really runs the whole system."""

import sqlite3
import subprocess
import sys
from pathlib import Path

from fleet_server.devtools.local_broker import free_port


def test_demo_counts_answers_from_simulated_kiosks_and_stops_everything(tmp_path):
    workdir = tmp_path / "demo"
    port = free_port()
    script = Path(sys.executable).with_name("palaute-server")
    proc = subprocess.run(
        [str(script), "demo", "--duration", "12", "--fresh", "--workdir", str(workdir), "--port", str(port),
         "--rate", "240", "--stations", "3"],
        check=False, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"http://127.0.0.1:{port}/" in proc.stderr
    with sqlite3.connect(workdir / "palaute.db") as db:
        per_station = dict(db.execute(
            "SELECT station_id, count(*) FROM feedback_events WHERE kind = 'smiley' GROUP BY station_id"
        ).fetchall())
        names = dict(db.execute("SELECT id, name FROM stations").fetchall())
        duplicates = db.execute(
            "SELECT count(*) - count(DISTINCT event_id) FROM feedback_events").fetchone()[0]
    assert set(per_station) == {"kokkola", "koivuhaka", "kalvia"}
    assert all(n > 0 for n in per_station.values())
    assert names["kalvia"] == "Kälviä health station"
    assert duplicates == 0
    # Everything the demo started is gone: nothing listens on its port any more.
    pgrep = subprocess.run(["pgrep", "-f", str(workdir)], check=False, capture_output=True, text=True)
    assert pgrep.stdout.strip() == "", f"left running: {pgrep.stdout}"
    # Security as in production: no anonymous access, one broker account and ACL per kiosk,
    # and the answers above got through them.
    broker_conf = (workdir / "broker" / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in broker_conf and "password_file" in broker_conf and "acl_file" in broker_conf
    acl = (workdir / "broker-auth" / "acl").read_text()
    assert "user kalvia-1" in acl and "topic write palaute/v1/kalvia/kalvia-1/events" in acl
    secret_file = workdir / "kiosks" / "kalvia-1" / "broker-password"
    assert oct(secret_file.stat().st_mode & 0o777) == "0o600"
    assert secret_file.read_text().strip() not in (workdir / "palaute.db").read_bytes().decode("latin-1")
    creds = (workdir / "credentials.txt")
    assert oct(creds.stat().st_mode & 0o777) == "0o600"
    assert {line.split("\t")[0] for line in creds.read_text().splitlines()} >= {"coordinator", "it", "admin"}


def test_demo_on_a_busy_port_says_so_in_one_line_and_starts_nothing(tmp_path):
    import socket

    with socket.socket() as other:  # something else already serves on the port
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        script = Path(sys.executable).with_name("palaute-server")
        proc = subprocess.run([str(script), "demo", "--duration", "5", "--workdir", str(tmp_path / "demo"),
                               "--port", str(port), "--lang", "sv"], capture_output=True, text=True, timeout=120,
                              check=False)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert any(f"port {port} is busy: use --port" in line for line in lines), proc.stderr
    assert any(line.startswith("Demon avbröts:") for line in lines), proc.stderr  # the console in Swedish
    assert "Kontrollpanel" not in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "demo" / "broker").exists()


def test_demo_refuses_a_language_it_has_no_catalogue_for(tmp_path):
    script = Path(sys.executable).with_name("palaute-server")
    proc = subprocess.run([str(script), "demo", "--lang", "de", "--workdir", str(tmp_path / "demo")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "one of fi, sv, en" in proc.stderr, proc.stderr
    assert not (tmp_path / "demo").exists()
