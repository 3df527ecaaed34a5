"""schemathesis against the node's OpenAPI document on loopback: no input gets a 5xx.

Each operation's cases come from schemathesis's Hypothesis strategy (a fixed, small
budget; derandomized so a failure reproduces). Requests carry a read-write token, so
writes reach the ledger and its refusals too.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

EXAMPLES = 15


def test_no_input_gets_a_server_error(served):
    schema = schemathesis.openapi.from_url(served.url + "/openapi.json")
    headers = {"Authorization": f"Bearer {served.tokens['dev']}"}
    ran = []
    for result in schema.get_all_operations():
        op = result.ok()

        @given(case=op.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def call(case):
            case.call_and_validate(base_url=served.url, headers=headers,
                                   checks=[not_a_server_error])

        call()
        ran.append(op.label)
    assert len(ran) >= 12, ran
