"""The project's own adversaries: proof forgers and dishonest providers.

Used by tests, benchmarks and the demo to show that each defence catches a cheater.
Nothing in the prover, verifier or auditor imports from here.
"""
