"""``palaute-kiosk``: run a kiosk, or check its config.

    palaute-kiosk --config /etc/palaute/kiosk.toml             # touch UI full screen + buttons (the Pi)
    palaute-kiosk --config kiosk.toml --headless               # real pins, no screen (buttons only)
    palaute-kiosk --config kiosk.toml --ui --mock-pins --windowed   # the UI on a PC, for demos
    palaute-kiosk --config kiosk.toml --simulate [--rate R] [--count N] [--seed S]
    palaute-kiosk check-config /etc/palaute/kiosk.toml
    palaute-kiosk selftest --config /etc/palaute/kiosk.toml    # IT: check every LED and button

Why the front ends are chosen here and nowhere else: every mode builds the same
:class:`kiosk.app.Kiosk`; a mode is a function ``(kiosk, options) -> exit code``
in ``MODES``, so adding the touch UI is one more entry and one more flag.
The process stops cleanly on SIGTERM/SIGINT: the uplink publishes an offline
status and disconnects normally, so the broker does not send the Last Will.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from .config import ConfigError, KioskConfig, load_config
from .watchdog import SystemdNotifier

_LOGGER = logging.getLogger(__name__)

DEFAULT_CONFIG = Path("/etc/palaute/kiosk.toml")

app = typer.Typer(
    add_completion=False,
    no_args_is_help=False,
    help="Palaute feedback kiosk.",
    pretty_exceptions_enable=False,
)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        logging.getLogger("kiosk.uplink.paho").setLevel(logging.WARNING)


def _load(path: Path) -> KioskConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


# --------------------------------------------------------------------- modes


def run_headless(kiosk, options: dict) -> int:
    """Physical buttons and LEDs only (whatever pin factory gpiozero picks), no screen."""
    kiosk.start()
    return kiosk.wait()


def run_simulate(kiosk, options: dict) -> int:
    from .simulate import Simulator

    kiosk.start()
    sim = Simulator(
        kiosk, kiosk.config.simulate,
        presses_per_minute=options.get("rate"), count=options.get("count"), seed=options.get("seed"),
    ).start()
    try:
        return kiosk.wait()
    finally:
        sim.stop()


def run_ui(kiosk, options: dict) -> int:
    """The Kivy touch UI (full screen per [ui] fullscreen) plus the physical buttons."""
    from .ui.run import run_ui as start_ui

    return start_ui(kiosk, options)


MODES: dict[str, Callable] = {"headless": run_headless, "simulate": run_simulate, "ui": run_ui}
"""Front ends by name. A UI adds ``"ui"`` here (and a ``--ui`` flag below)."""


def _with_updates(kiosk) -> None:
    """Report the updater's state in status, and the health the updater waits for (kiosk.updater)."""
    if not kiosk.config.updates.release_public_key:
        return
    from .updater import HealthReporter, status_fields

    kiosk.uplink.status_extra = lambda: status_fields(kiosk.config)
    reporter = HealthReporter(kiosk)
    kiosk.tick_hooks.append(reporter)
    kiosk.connection_listeners.append(lambda _connected: reporter())  # online: say so now, not at the next tick


def run(config: KioskConfig, mode: str, options: dict | None = None) -> int:
    """Build the kiosk for ``mode``, run it until a signal or a restart command, close it."""
    from .app import Kiosk

    options = options or {}
    pin_factory = None
    override = None
    if mode == "simulate" or options.get("mock_pins"):
        from gpiozero import Device
        from gpiozero.pins.mock import MockFactory, MockPWMPin

        Device.pin_factory = MockFactory(pin_class=MockPWMPin)
        if mode == "simulate":
            override = config.simulate.clock_synced
    try:
        kiosk = Kiosk(config, pin_factory=pin_factory, clock_synced_override=override)
    except ConfigError as exc:  # e.g. a bad pin map
        typer.echo(f"error: {exc}", err=True)
        return 2
    notifier = SystemdNotifier.from_environ(os.environ)  # palaute-kiosk.service: Type=notify + WatchdogSec
    kiosk.tick_hooks.append(notifier.tick)
    _with_updates(kiosk)
    with kiosk:
        def on_signal(signum, _frame):
            _LOGGER.info("got %s; stopping", signal.Signals(signum).name)
            kiosk.request_stop(0)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        code = MODES[mode](kiosk, options)
        notifier.stopping()
    _LOGGER.info("kiosk stopped (exit %d)", code)
    return code


# --------------------------------------------------------------------- commands


@app.callback(invoke_without_command=True)
def main_command(
    ctx: typer.Context,
    config: Annotated[Path, typer.Option("--config", "-c", help="kiosk.toml")] = DEFAULT_CONFIG,
    simulate: Annotated[bool, typer.Option("--simulate", help="mock pins, simulated presses, no screen")] = False,
    rate: Annotated[float | None, typer.Option(help="simulate: presses per minute")] = None,
    count: Annotated[int | None, typer.Option(help="simulate: stop pressing after N presses")] = None,
    seed: Annotated[int | None, typer.Option(help="simulate: random seed")] = None,
    headless: Annotated[bool, typer.Option("--headless", help="physical buttons only, no screen")] = False,
    ui: Annotated[bool, typer.Option("--ui", help="the touch UI (the default unless --simulate/--headless)")] = False,
    mock_pins: Annotated[bool, typer.Option("--mock-pins", help="gpiozero MockFactory pins (demos on a PC)")] = False,
    windowed: Annotated[bool, typer.Option("--windowed", help="UI in a window even if [ui] fullscreen")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the kiosk (default: the touch UI and the physical buttons)."""
    if ctx.invoked_subcommand is not None:
        return
    _setup_logging(verbose)
    if sum((simulate, headless, ui)) > 1:
        typer.echo("error: choose one of --simulate, --headless, --ui", err=True)
        raise typer.Exit(2)
    mode = "simulate" if simulate else "headless" if headless else "ui"
    if not simulate and (rate is not None or count is not None or seed is not None):
        typer.echo("error: --rate/--count/--seed only apply with --simulate", err=True)
        raise typer.Exit(2)
    if mode == "ui":
        try:
            loaded = load_config(config)
        except ConfigError as exc:
            # No black screen: say on the display what is wrong, until the file is fixed.
            typer.echo(f"error: {exc}", err=True)
            from .ui.service import run_service_screen

            raise typer.Exit(run_service_screen(config, str(exc), fullscreen=not windowed)) from None
    else:
        loaded = _load(config)
    code = run(loaded, mode, {"rate": rate, "count": count, "seed": seed,
                              "mock_pins": mock_pins, "windowed": windowed})
    raise typer.Exit(code)


@app.command("check-config")
def check_config(path: Annotated[Path, typer.Argument(help="kiosk.toml to check")]) -> None:
    """Validate a kiosk config and its pin map; exit 0 if good, 2 with the reason if not."""
    from .pinmap import load_pinmap

    config = _load(path)
    try:
        pinmap = load_pinmap(config.hardware.pin_map)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    b = config.broker
    typer.echo(f"{path}: OK")
    typer.echo(f"  device  {config.device.station_id}/{config.device.device_id}")
    typer.echo(f"  broker  {b.url} user={b.username or '-'} password={'set' if b.password or b.password_file else '-'}"
               f" tls={'yes' if b.tls else 'no'}")
    typer.echo(f"  outbox  {config.outbox.path} (max {config.outbox.max_events} events)")
    typer.echo(f"  pins    {pinmap.source}: " + ", ".join(f"{n}={p}" for n, p in pinmap.all_pins()))


@app.command("selftest")
def selftest(
    config: Annotated[Path, typer.Option("--config", "-c", help="kiosk.toml (for its pin map)")] = DEFAULT_CONFIG,
    timeout: Annotated[float, typer.Option(help="seconds to wait for each button")] = 30.0,
) -> None:
    """Check every LED and button of an assembled kiosk, step by step (works over SSH)."""
    from .pinmap import load_pinmap
    from .selftest import run_selftest

    _setup_logging(False)
    cfg = _load(config)
    try:
        pinmap = load_pinmap(cfg.hardware.pin_map)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    report = run_selftest(pinmap, press_timeout_s=timeout, bounce_time_s=cfg.hardware.bounce_time_s)
    raise typer.Exit(0 if report.ok else 1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
