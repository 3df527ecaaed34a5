"""Provenance: digests, the content store, Merkle anchoring."""
