"""A bounded schemathesis run over the whole API, with a token of each role: no 5xx, and
every status the API answers is one its OpenAPI document lists.

Bounded on purpose (schemathesis' boundary cases plus a few random examples per operation,
each sent with the four roles' tokens; SQLite; a private Mosquitto so config and command
publishes succeed quickly): it catches an unhandled input or an undocumented status.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.feedback import FeedbackSources
from schemathesis.generation.hypothesis.builder import HypothesisTestConfig, HypothesisTestMode, create_test
from schemathesis.specs.openapi.checks import status_code_conformance

from fleet_server.app import create_app
from fleet_server.core.settings import load_settings
from fleet_server.ingest.consumer import InboundMessage, store_batch
from tests.support.auth_helpers import bearer
from tests.support.server_factories import event, events_message, status_message

pytestmark = pytest.mark.broker

EXAMPLES = 8
"""Random examples per operation (after schemathesis' boundary and negative cases)."""


@pytest.fixture
def fuzz_env(sqlite_url, broker):
    settings_ = load_settings(environ={}, database_url=sqlite_url, mode="development", mqtt_url=broker.url)
    app = create_app(settings_, start_ingest=False)
    with TestClient(app) as client:  # runs the lifespan: database and app.state stay up for the run
        base = datetime.now(UTC) - timedelta(hours=2)
        store_batch(app.state.session_factory, [
            events_message([event(value=v, ts=base - timedelta(minutes=i)) for i, v in enumerate((1, 2, 3, 4, 4, 3))]),
            status_message(online=True),
            InboundMessage("palaute/v1/kalvia/kalvia-1/events", b"not json"),
        ])
        roles = {
            "coordinator": bearer(client, "coordinator"),
            "staff": bearer(client, "staff", "kalvia"),
            "it": bearer(client, "it"),
            "admin": bearer(client, "admin"),
        }
        yield app, roles


def test_no_api_operation_answers_5xx_or_an_undocumented_status(fuzz_env):
    app, roles = fuzz_env
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers=roles["it"])
    failures: list[str] = []

    def call(case) -> None:
        for role, headers in roles.items():
            try:
                case.call_and_validate(headers=headers, checks=[not_a_server_error, status_code_conformance])
            except AssertionError as exc:  # schemathesis' failure group: collect, report them all at the end
                failures.append(f"{role} {case.method} {case.formatted_path}: {str(exc)[:300]}")

    feedback = FeedbackSources()
    for result in schema.get_all_operations():
        operation = result.ok()
        test = create_test(operation=operation, test_func=call, config=HypothesisTestConfig(
            settings=settings(max_examples=EXAMPLES, deadline=None, database=None,
                              suppress_health_check=list(HealthCheck)),
            modes=[HypothesisTestMode.EXAMPLES, HypothesisTestMode.COVERAGE, HypothesisTestMode.FUZZING],
            project=schema.config, feedback=feedback, seed=1,
        ))
        test()
    assert not failures, "\n".join(sorted(set(failures))[:30])
