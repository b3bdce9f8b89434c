"""schemathesis against ``/api/v1/openapi.json``: every operation, with data generated from its
schema, as the role that holds the operation's permission (so requests reach the handlers, not
just the permission check). No answer is a 5xx and every answer matches the document: its
status code, content type, headers and body schema (problems included).

The operations are driven from Hypothesis directly (``operation.as_strategy()``): schemathesis's
pytest plugin does not load under this project's pytest 9.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings

from likeness.service.roles import Role

#: The role whose permission each ``x-permission`` names ("job-kind": the matrix's verify jobs).
ROLE_FOR = {
    "read": Role.VIEWER,
    "verify": Role.LEGAL,
    "job-kind": Role.LEGAL,
    "render": Role.STUDIO,
    "manage_users": Role.ADMIN,
}
EXAMPLES = 25


def _checks() -> list:
    """The issue's checks: no 5xx, and the answer matches the document (status code, content
    type, headers, body schema); and data that breaks the schema is refused. Not schemathesis's
    ``positive_data_acceptance``: a schema-valid upload whose bytes are no image is a 415 here
    on purpose (a JSON schema cannot say "an image")."""
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi import checks

    return [
        not_a_server_error,
        checks.status_code_conformance,
        checks.content_type_conformance,
        checks.response_headers_conformance,
        checks.response_schema_conformance,
        checks.negative_data_rejection,
    ]


def test_every_operation_answers_as_its_schema_says(service_world):
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", service_world.app)
    failures: dict[str, str] = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        role = ROLE_FOR.get(operation.definition.raw.get("x-permission"))
        headers = {"Authorization": f"Bearer {service_world.tokens[role]}"} if role else {}

        try:
            _fuzz(operation, headers)
        except BaseException as exc:  # collect every operation's failures (a group), then report them together
            if not isinstance(exc, (AssertionError, BaseExceptionGroup)):
                raise
            failures[operation.label] = str(exc)[:1500]
    assert operations >= 25
    assert failures == {}


def _fuzz(operation, headers: dict[str, str]) -> None:
    checks = _checks()

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(case=operation.as_strategy())
    def call(case):
        case.call_and_validate(headers=headers, checks=checks)

    call()
