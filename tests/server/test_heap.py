"""A running server's start-up objects are out of the full garbage collections' walk
(fleet_server.core.heap), and handed back when it stops."""

from __future__ import annotations

import gc

from fastapi.testclient import TestClient

from fleet_server.app import create_app
from fleet_server.core.settings import load_settings


def _tracked(obj: object) -> bool:
    return any(o is obj for o in gc.get_objects())


def test_objects_made_before_start_are_skipped_by_collections_until_the_app_stops(sqlite_url):
    made_before = [object()]  # a tracked container, as the server's own long-lived objects are
    assert _tracked(made_before)
    app = create_app(load_settings(environ={}, database_url=sqlite_url, mode="development"), start_ingest=False)
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        assert not _tracked(made_before)  # in the permanent generation: full collections skip it
        made_while_running = [object()]
        assert _tracked(made_while_running)  # what requests make is collected as usual
    assert _tracked(made_before)
