"""``ledger check`` while other processes write (and die mid-write) never cries wolf.

Writers in other processes register datasets on the same embedded home; checks run in
this process meanwhile. Before the check took the writers' lock, 5 of 5 such checks said
``ledger damaged`` (the ``meta`` head moved under the re-execution). Every alarm here is
false: the home is never forged.
"""

from __future__ import annotations

from mltrail.testing.ledger_check_race import race
from testkit import PASSWORD


def test_fifty_checks_overlapping_writers_raise_no_alarm(home):
    result = race(home, PASSWORD, checks=50, seed=1)
    assert result.false_alarms == 0, result.messages
    assert result.moved >= 15, result.as_dict()  # the writes really overlapped the checks
    assert result.final_ok, result.messages


def test_checks_racing_writers_killed_mid_write_raise_no_alarm(home):
    result = race(home, PASSWORD, checks=12, seed=2, kill=0.5, pause=0.0)
    assert result.kills >= 2, result.as_dict()
    assert result.false_alarms == 0, result.messages
    assert result.final_ok, result.messages
