"""The participant node: a FastAPI app over the library (REST API, blob exchange, dashboard).

Nothing here decides anything: every read and write is a library call (``Ledger``,
``ContentStore``, the PoL and audit report models). What the node adds is transport:
HTTP, API tokens (stored as hashes only), and fetching blobs from other members' nodes.
"""
