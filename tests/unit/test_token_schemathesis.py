"""Schemathesis against the app's own OpenAPI spec (in-process ASGI, no network).

Checks every documented operation with schema-valid and schema-violating inputs: no 5xx,
status codes, content types, headers and bodies conform to the spec.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from tests.unit.test_token_helpers import make_app

MAX_EXAMPLES = 30

CASES: Counter[str] = Counter()

# 413 is how the server (documentedly) rejects schema-violating oversized bodies.
REJECTED = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]


def _config() -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "generation": {"max-examples": MAX_EXAMPLES},
            "checks": {"negative_data_rejection": {"expected-statuses": REJECTED}},
        }
    )


open_schema = schemathesis.openapi.from_asgi("/openapi.json", make_app(), config=_config())
bearer_schema = schemathesis.openapi.from_asgi(
    "/openapi.json",
    make_app(token_auth="bearer", token_bearer_keys="schema-key"),
    config=_config(),
)


@pytest.fixture(scope="module", autouse=True)
def report_case_count() -> Iterator[None]:
    yield
    print(f"\nschemathesis cases: {sum(CASES.values())} {dict(CASES)}")


_hyp = hypothesis_settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@open_schema.parametrize()
@_hyp
def test_open_mode_conforms(case: schemathesis.Case) -> None:
    CASES[f"open {case.method} {case.path}"] += 1
    response = case.call_and_validate()
    assert response.status_code < 500


@bearer_schema.parametrize()
@_hyp
def test_bearer_mode_conforms(case: schemathesis.Case) -> None:
    CASES[f"bearer {case.method} {case.path}"] += 1
    response = case.call_and_validate(headers={"Authorization": "Bearer schema-key"})
    assert response.status_code < 500
