"""The server process's long-lived objects kept out of Python's full garbage collections.

A started server holds a few hundred thousand objects that live as long as it does
(modules, the ORM's mappers, routes, compiled templates). CPython's full (oldest-generation)
collection walks every one of them each time enough new objects have survived two younger
collections, and a page that builds 500 stations' figures makes that happen every few
requests: at 500 stations one full collection took about 200 ms, landing on whichever
request was running (a quarter of the overview's time on average, most of its p95).
``gc.freeze()`` once the app has started moves what exists then into a permanent
generation that collections skip; the objects are still freed by reference counting, and
``gc.unfreeze()`` on shutdown hands them back, so a process that starts and stops many apps
(the tests) leaks nothing.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def startup_objects_frozen() -> Iterator[None]:
    """While the block runs, full collections skip every object that existed when it began."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
