"""Inference-service accountability: a reference service, dishonest providers for tests,
and an auditor that checks a classification API serves the model it claims.

Modules: :mod:`.models` (model files and cards), :mod:`.receipts` (signed meta-results),
:mod:`.service` (reference API), :mod:`.proxy` (providers), :mod:`.client` (HTTP client),
:mod:`.stats` (exact and anytime-valid tests), :mod:`.probes` / :mod:`.stego` (probe sets,
keyed steganographic probes and trigger sets), :mod:`.deterministic`, :mod:`.robustness`,
:mod:`.latency`, :mod:`.report` and :mod:`.runner` (the audit itself). Nothing in this
package talks to the ledger except :func:`mltrail.audit.runner.record_verdict`.
"""
