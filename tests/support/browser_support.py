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

AXE = ROOT / "tests" / "support" / "vendor" / "axe.min.js"
"""axe-core, vendored (npm ``axe-core``, MPL-2.0): the browser tests' accessibility check."""
AXE_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
    .map(v => v.id + ' (' + v.impact + '): ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | '));
}"""


def axe_violations(page) -> list[str]:
    """axe-core's serious and critical violations on ``page`` as it is now ("rule (impact): targets")."""
    page.add_script_tag(path=str(AXE))
    return page.evaluate(AXE_RUN)


def too_wide(page, where: str, max_width: int) -> list[str]:
    """A problem if ``page`` is wider than ``max_width`` (a phone's 390 px): it would scroll sideways."""
    width = page.evaluate("() => document.documentElement.scrollWidth")
    return [f"{where}: {width} px wide on a {max_width} px screen"] if width > max_width else []


def page_problems(page, where: str, max_width: int | None = None) -> list[str]:
    """axe's serious and critical violations on ``page``, and with ``max_width`` its being wider, named by ``where``."""
    problems = [f"{where}: {v}" for v in axe_violations(page)]
    return problems + (too_wide(page, where, max_width) if max_width is not None else [])


def axe_is_looking(page) -> bool:
    """Whether axe reports an image without a text alternative added to ``page``'s main: the check can fail."""
    page.evaluate("() => document.querySelector('main').append(document.createElement('img'))")
    return any(v.startswith("image-alt") for v in axe_violations(page))


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
