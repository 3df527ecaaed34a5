"""schemathesis against the node's OpenAPI document on loopback: no input gets a 5xx.

Each operation's cases come from schemathesis's Hypothesis strategy (a fixed, small
budget; derandomized so a failure reproduces). Requests carry a read-write token, so
writes reach the ledger and its refusals too; a second, smaller run carries no
credential, then a malformed member signature (the routes that refuse them).
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

EXAMPLES = 15
ANONYMOUS_EXAMPLES = 4


def test_no_input_gets_a_server_error(served):
    _run(served, {"Authorization": f"Bearer {served.tokens['dev']}"}, EXAMPLES)


def test_no_input_gets_a_server_error_without_credentials(served):
    """The same operations with no credential (content and writes refused, never a 5xx),
    and with a member's header that is garbage."""
    _run(served, {}, ANONYMOUS_EXAMPLES)
    _run(served, {"X-Mltrail-Member": "0x" + "ab" * 20 + ":1:nonce:0x:0x00"},
         ANONYMOUS_EXAMPLES)


def _run(served, headers: dict[str, str], examples: int) -> None:
    schema = schemathesis.openapi.from_url(served.url + "/openapi.json")
    ran = []
    for result in schema.get_all_operations():
        op = result.ok()

        @given(case=op.as_strategy())
        @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def call(case):
            case.call_and_validate(base_url=served.url, headers=headers,
                                   checks=[not_a_server_error])

        call()
        ran.append(op.label)
    assert len(ran) >= 12, ran
