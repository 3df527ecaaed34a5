"""Data-parallel training across untrusted workers (Ray actors), with spot-checked updates.

Modules: :mod:`.polapi` (the one adapter onto :mod:`mltrail.pol`), :mod:`.spotcheck`
(fraction formula and commit-then-challenge draw), :mod:`.worker` (the Ray actor),
:mod:`.evidence` (exclusions on the ledger) and :mod:`.coordinator` (rounds, checks,
aggregation, the one PoL bundle). ``docs/distributed.md`` says what is guaranteed.
"""
