"""Programs the tests drive. The test command (bash run.sh test) installs every one of
them, so a missing program fails the test that needs it instead of skipping it."""

from __future__ import annotations

import shutil

import pytest


def require(program: str) -> str:
    """The path of ``program``; fails the calling test when it is not installed."""
    path = shutil.which(program)
    if path is None:
        pytest.fail(f"{program} is not installed; bash run.sh test installs it", pytrace=False)
    return path
