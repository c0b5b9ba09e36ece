"""Headless Chromium for the dashboard tests: Debian's browser driven by pip's playwright.

Screenshots go to artifacts/screenshots/; with PALAUTE_UPDATE_DOC_SCREENSHOTS=1 they
also refresh docs/screenshots/ (as tests/ui does), so an ordinary run leaves docs/ alone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support.tools import require

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "screenshots"
DOC_SHOTS = ROOT / "docs" / "screenshots"

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
"""Root needs --no-sandbox; the rest keep Chromium off this machine's closed network."""


def launch(pw):
    """A headless Chromium (the system one; never `playwright install`)."""
    return pw.chromium.launch(executable_path=require("chromium"), args=CHROMIUM_ARGS)


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("PALAUTE_UPDATE_DOC_SCREENSHOTS") == "1":
        DOC_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOC_SHOTS / f"{name}.png")


@contextlib.contextmanager
def serve_in_thread(app, *, timeout_s: float = 20) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yields its base URL."""
    import uvicorn

    from fleet_server.devtools.local_broker import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
