"""The kiosk's CPU per event while it drains its outbox to the broker (the Pi's own CPU).

    python bench/bench_kiosk_drain.py [--kiosks 8] [--events 40000] [--retention-days 0] [--rounds 3]
    python bench/bench_kiosk_drain.py --profile 30   # cProfile of the uplink threads, top 30 by own time

Real ``Kiosk`` objects (outbox + uplink, as in bench_ingest's end-to-end phase) drain
preloaded outboxes to a private Mosquitto; nothing subscribes, so the broker only
acknowledges. Each round runs in a fresh child process and times that process's CPU
(all threads) from ``Kiosk.start`` until every outbox is empty, divided by the events.
``--check`` subscribes and decodes every batch with the wire contract (palaute_wire),
counting events and refusing duplicates or a seq out of order.
"""

from __future__ import annotations

import argparse
import cProfile
import multiprocessing as mp
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fleet_server.devtools.local_broker import Mosquitto
from kiosk.app import Kiosk
from kiosk.config import parse_config
from kiosk.uplink import Uplink
from palaute_wire import contract


def _kiosk(workdir: Path, broker_url: str, n: int, retention_days: float) -> Kiosk:
    station = f"station-{n % 8}"
    config = parse_config(
        {
            "device": {"station_id": station, "device_id": f"{station}-k{n}"},
            "broker": {"url": broker_url, "heartbeat_s": 30},
            "outbox": {"path": str(workdir / f"k{n}" / "outbox.db"), "retention_days": retention_days},
            "state": {"dir": str(workdir / f"k{n}" / "state")},
        }
    )
    return Kiosk(config, clock_synced_override=True)


def _fill(template: Path, kiosks: int, total: int, retention_days: float) -> int:
    """Press on every kiosk; the outboxes skip fsync while filling (setup, not timed)."""
    stored = 0
    for n in range(kiosks):
        with _kiosk(template, "mqtt://127.0.0.1:1", n, retention_days) as k:
            k.outbox._db.execute("PRAGMA synchronous=OFF")
            for i in range(total // kiosks):
                k.press_smiley(1 + i % 4)
            stored += k.outbox.stats().queue_depth
    return stored


def _drain(run_dir: str, broker_url: str, kiosks: int, retention_days: float, profile: int, out) -> None:
    """Child process: start the kiosks, wait until every outbox is empty; send back the CPU seconds."""
    profiles: list[cProfile.Profile] = []
    if profile:
        run = Uplink._run

        def profiled(self: Uplink) -> None:
            prof = cProfile.Profile(time.thread_time)  # CPU, not waits (fsync, select)
            profiles.append(prof)
            prof.runcall(run, self)

        Uplink._run = profiled  # type: ignore[method-assign]
    ks = [_kiosk(Path(run_dir), broker_url, n, retention_days) for n in range(kiosks)]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for k in ks:
        k.start(buttons=False)
    deadline = time.monotonic() + 600
    while any(k.outbox.stats().queue_depth for k in ks):
        if time.monotonic() > deadline:
            raise RuntimeError("the outboxes did not drain in 600 s")
        time.sleep(0.05)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    for k in ks:
        k.close()
    if profiles:
        stats = pstats.Stats(profiles[0])
        for prof in profiles[1:]:
            stats.add(prof)
        stats.sort_stats("tottime").print_stats(profile)
        stats.sort_stats("cumulative").print_stats(profile)
    out.send((cpu, wall))


class _Checker:
    """Decodes every events message like the server does; counts events, refuses copies and disorder."""

    def __init__(self, broker_url: str) -> None:
        self.events = 0
        self.problems: list[str] = []
        self._last: dict[str, int] = {}
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-drain-check",
                                  protocol=MQTTProtocolVersion.MQTTv5)
        self.client.on_message = self._on_message
        host, port = broker_url.removeprefix("mqtt://").split(":")
        self.client.connect(host, int(port))
        self.client.subscribe("palaute/v1/+/+/events", qos=1)
        self.client.loop_start()

    def _on_message(self, _c, _u, message) -> None:
        try:
            _, batch = contract.decode(message.topic, message.payload)
        except Exception as exc:  # noqa: BLE001 - reported, not raised in paho's thread
            self.problems.append(f"{message.topic}: {exc}")
            return
        with self._lock:
            for e in batch.events:
                key = str(e.event_id)
                if key in self._seen:
                    self.problems.append(f"duplicate {key}")
                    continue
                if e.seq <= self._last.get(e.device_id, 0):
                    self.problems.append(f"{e.device_id}: seq {e.seq} after {self._last[e.device_id]}")
                self._last[e.device_id] = e.seq
                self._seen.add(key)
                self.events += 1

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kiosks", type=int, default=8)
    parser.add_argument("--events", type=int, default=40_000, help="total events over all kiosks")
    parser.add_argument("--retention-days", type=float, default=0,
                        help="outbox retention (0: acked rows deleted, as bench_ingest; the kiosk default is 7)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is printed")
    parser.add_argument("--check", action="store_true", help="subscribe and decode every batch with the contract")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="cProfile the uplink threads in one round and print the top N functions")
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    figures: list[float] = []
    with tempfile.TemporaryDirectory(prefix="palaute-drain-") as tmp:
        workdir = Path(tmp)
        template = workdir / "template"
        total = _fill(template, args.kiosks, args.events, args.retention_days)
        for r in range(1 if args.profile else args.rounds):
            run_dir = workdir / f"run-{r}"
            shutil.copytree(template, run_dir)
            with Mosquitto(workdir / f"broker-{r}", persistence=False) as broker:
                checker = _Checker(broker.url) if args.check else None
                theirs, ours = ctx.Pipe(duplex=False)
                child = ctx.Process(target=_drain, args=(str(run_dir), broker.url, args.kiosks,
                                                         args.retention_days, args.profile, ours))
                child.start()
                cpu, wall = theirs.recv()
                child.join(30)
                if checker is not None:
                    deadline = time.monotonic() + 10
                    while checker.events < total and time.monotonic() < deadline:
                        time.sleep(0.05)
                    checker.close()
                    if checker.problems or checker.events != total:
                        raise SystemExit(f"check failed: {checker.events} of {total} events; "
                                         f"{checker.problems[:5]}")
            figures.append(cpu / total * 1e6)
            print(f"  round {r + 1}: {cpu / total * 1e6:.1f} us CPU per event, {total / wall:,.0f} events/s "
                  f"({cpu:.2f} s CPU in {wall:.2f} s)", flush=True)
            shutil.rmtree(run_dir)
    print(f"kiosk drain: {args.kiosks} kiosks, {total} events, retention {args.retention_days:g} days, "
          f"load {os.getloadavg()[0]:.2f}: median {statistics.median(figures):.1f} us CPU per event"
          + (" (checked)" if args.check else ""))


if __name__ == "__main__":
    main()
