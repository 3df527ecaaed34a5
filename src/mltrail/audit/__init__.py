"""Inference-service accountability: a reference service, and an auditor that checks a
classification API serves the model its ledger claims say it serves.

Modules: :mod:`.models` (model files and cards), :mod:`.claims` (signed claims bound to a
service artefact), :mod:`.claimed` (what an audit tests against), :mod:`.receipts`
(signed meta-results), :mod:`.wire` (typed service info and answers), :mod:`.service`
(reference API, hardened request parsing), :mod:`.oip` (the same model over the Open
Inference Protocol, KServe / Triton v2), :mod:`.client` (HTTP client; failures are data),
:mod:`.protocols` (v2 and adapter-described clients, the protocol chosen from the URL),
:mod:`.adapter` (adapter files for any other JSON API),
:mod:`.traffic` (clients' sampled receipts, submission format, the auditor's inbox),
:mod:`.evidence` (clients' submissions as evidence; the missing-receipt test),
:mod:`.stats` (exact and anytime-valid tests), :mod:`.checks` (the test bank and "no test,
no pass"), :mod:`.probes` / :mod:`.heldout` / :mod:`.fresh` / :mod:`.stego` (probe sets:
the auditor's own held data, fresh probes far from public data, keyed steganographic
probes and trigger sets), :mod:`.distinguish` (adversarial validation of a probe set;
public or detectable probes cannot pass alone), :mod:`.preflight` (refuse an audit whose
verdict could not be recorded), :mod:`.deterministic`,
:mod:`.robustness`, :mod:`.latency`, :mod:`.result` (the typed report), :mod:`.report`
(JSON bytes and HTML), :mod:`.runner` (:func:`~mltrail.audit.runner.run_audit`, the
entry point) and :mod:`.workflows` (what the command line does, as library calls).
Only :mod:`.claims` and :func:`mltrail.audit.runner.record_verdict` talk to the ledger.
"""
