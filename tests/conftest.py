"""Shared fixtures: a private Mosquitto per test, and the databases under test."""

from __future__ import annotations

import pytest

from fleet_server.local_broker import Mosquitto


@pytest.fixture
def broker(tmp_path):
    """A fresh private Mosquitto (anonymous allowed) on a free loopback port."""
    with Mosquitto(tmp_path / "broker") as b:
        yield b
