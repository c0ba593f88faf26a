"""Schemathesis fuzzing of the served OpenAPI schema: malformed input never gives a 5xx."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from http_support import build_runtime
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.openapi import from_asgi
from schemathesis.python import asgi
from schemathesis.specs.openapi.schemas import OpenApiSchema

from adapter.service.http import create_app


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenApiSchema]:
    """The schema of an app over a fresh SQLite store; its committer runs on schemathesis' loop."""
    runtime = build_runtime(tmp_path_factory.mktemp("fuzz"))
    yield from_asgi("/openapi.json", create_app(runtime))
    # schemathesis calls the app on one shared event loop: the writer task lives there.
    asgi._get_portal().call(runtime.committer.close)
    runtime.store.close()


OPERATIONS = [
    ("POST", "/hl7v2"),
    ("POST", "/fhir"),
    ("GET", "/fhir/metadata"),
    ("GET", "/fhir/{resource_type}/{resource_id}"),
    ("GET", "/fhir/{resource_type}"),
    ("GET", "/cases/{case_id}"),
    ("GET", "/cases"),
    ("GET", "/messages/{message_id}"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("POST", "/admin/mappings/reload"),
    ("GET", "/audit"),
    ("GET", "/audit.json"),
]


def test_every_operation_is_fuzzed(api_schema: OpenApiSchema) -> None:
    """The list below names every operation the schema has, so none escapes the fuzzing."""
    served = {
        (result.ok().method.upper(), result.ok().path) for result in api_schema.get_all_operations()
    }
    assert served == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_no_server_error(api_schema: OpenApiSchema, method: str, path: str) -> None:
    """Whatever schemathesis sends to an endpoint, the answer is never a 5xx."""
    operation = api_schema[path][method]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=50,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def fuzz(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=[not_a_server_error])

    fuzz()
