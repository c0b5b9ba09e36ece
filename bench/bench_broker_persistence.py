"""Broker persistence: what Mosquitto's autosave settings cost, and what a kill -9 loses.

For each setting: a private Mosquitto with that autosave line; the ingest's persistent
session (clean start off, QoS 1) is subscribed and then away, so every message queues
for it as during a server outage; a publisher sends N QoS 1 messages of a kiosk batch's
size and waits for every PUBACK (acknowledged: the kiosk may forget them). Then the
broker is killed with SIGKILL and started again on the same files, the session comes
back and counts what the broker still had. Prints per setting: publish rate, the
broker's own CPU seconds, the persistence file's size and saves, and acknowledged
messages lost.

    python bench/bench_broker_persistence.py [--messages 5000] [--size 3000]
"""

from __future__ import annotations

import argparse
import os
import resource  # noqa: F401 - documents that CPU times come from /proc below
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from fleet_server.devtools.local_broker import Mosquitto

SETTINGS = {
    "autosave_interval 60 (old deploy)": "autosave_interval 60",
    "autosave_interval 1": "autosave_interval 1",
    "autosave_interval 5": "autosave_interval 5",
    "on_changes, every 1000 changes": "autosave_on_changes true\nautosave_interval 1000",
    "on_changes, every 100 changes": "autosave_on_changes true\nautosave_interval 100",
    "on_changes, every 10 changes": "autosave_on_changes true\nautosave_interval 10",
    "on_changes, every change": "autosave_on_changes true\nautosave_interval 1",
}
TOPIC = "palaute/v1/bench/bench-1/events"


def _client(client_id: str, port: int, clean: bool) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5)
    c.max_inflight_messages_set(100)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    c.connect("127.0.0.1", port, clean_start=clean, properties=props)
    return c


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(name: str, line: str, messages: int, size: int, workdir: Path) -> dict:
    broker = Mosquitto(workdir, extra_config=line).start()
    try:
        sub = _client("bench-ingest", broker.port, clean=False)  # clean=True: Mosquitto 2.0.11 does not restore it
        sub.loop_start()
        sub.subscribe(TOPIC, qos=1)[1]
        time.sleep(0.3)
        sub.disconnect()
        sub.loop_stop()

        pub = _client("bench-kiosk", broker.port, clean=True)
        pub.loop_start()
        payload = b"x" * size
        cpu0 = _cpu_s(broker.proc.pid)
        t0 = time.perf_counter()
        infos = [pub.publish(TOPIC, payload, qos=1) for _ in range(messages)]
        for info in infos:
            info.wait_for_publish(60)
        elapsed = time.perf_counter() - t0
        cpu = _cpu_s(broker.proc.pid) - cpu0
        pub.loop_stop()
        db = workdir / "mosquitto.db"
        db_size = db.stat().st_size if db.exists() else 0
        broker.proc.send_signal(signal.SIGKILL)
        broker.proc.wait()
        broker.proc = None
        broker.start()
        got = threading.Event()
        count = [0]

        def on_message(_c, _u, _m):
            count[0] += 1
            if count[0] >= messages:
                got.set()

        back = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-ingest", protocol=MQTTProtocolVersion.MQTTv5)
        back.on_message = on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        back.connect("127.0.0.1", broker.port, clean_start=False, properties=props)
        back.loop_start()
        got.wait(5 if messages else 0)
        time.sleep(0.5)
        back.loop_stop()
        return {"name": name, "rate": messages / elapsed, "cpu": cpu, "db_mb": db_size / 1e6,
                "lost": messages - count[0]}
    finally:
        broker.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--size", type=int, default=3000, help="bytes per message (a 10-event batch is about 3 KB)")
    ap.add_argument("--only", default="", help="run the settings whose name contains this")
    args = ap.parse_args()
    print(f"{args.messages} QoS 1 messages of {args.size} B queued for an absent persistent session, "
          "then kill -9 and restart\n")
    print(f"{'setting':38} {'msg/s':>8} {'broker CPU s':>12} {'db MB':>7} {'acked, lost':>12}")
    for name, line in SETTINGS.items():
        if args.only not in name:
            continue
        with tempfile.TemporaryDirectory(prefix="palaute-persist-") as tmp:
            r = run(name, line, args.messages, args.size, Path(tmp))
        print(f"{r['name']:38} {r['rate']:8.0f} {r['cpu']:12.2f} {r['db_mb']:7.1f} {r['lost']:12d}", flush=True)


if __name__ == "__main__":
    main()
