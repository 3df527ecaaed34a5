"""Where the blob-exchange client used to live: it is ``mltrail.provenance.exchange`` now.

Kept so that ``from mltrail.server.exchange import fetch_blob`` (the ledger client's
import) keeps working. Defines nothing; the node's read rule is ``server.access``.
"""

from mltrail.provenance.exchange import (
    HEADER,
    MAX_BLOB,
    MAX_SKEW,
    NonceCache,
    Readers,
    fetch_blob,
    fetch_from,
    node_url,
    normalise,
    peers,
    publish_url,
    remember_peer,
    sign_request,
    verify_request,
)

__all__ = ["HEADER", "MAX_BLOB", "MAX_SKEW", "NonceCache", "Readers", "fetch_blob",
           "fetch_from", "node_url", "normalise", "peers", "publish_url", "remember_peer",
           "sign_request", "verify_request"]
