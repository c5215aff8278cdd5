"""schemathesis against the app's own OpenAPI schema: generated requests for every HTTP operation
(valid and invalid by the schema), never a 5xx. GET /sse is left out: it is an endless stream."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from transport_demo import RunningServer, Settings, create_app

from .figures import record

schema = schemathesis.openapi.from_dict(create_app(Settings()).openapi()).exclude(
    path="/sse", method="GET"
)
CALLS: dict[str, int] = {}

pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:Do not use the `random` module:hypothesis.errors.HypothesisDeprecationWarning"
    ),
    pytest.mark.slow,
]


@pytest.fixture(scope="module")
def live(make_module_server: RunningServer) -> RunningServer:
    return make_module_server


@schema.parametrize()
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: schemathesis.Case, live: RunningServer) -> None:
    response = case.call(base_url=live.url, timeout=10)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.json()["type"] == "error"
    key = f"{case.method} {case.path}"
    CALLS[key] = CALLS.get(key, 0) + 1
    record("schemathesis", **CALLS)
