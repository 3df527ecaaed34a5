"""The decentralised auditor network: oracles audit services, commit and reveal findings,
reach consensus on chain (AuditMarket), and are paid or slashed in AuditToken.

    >>> from mltrail.oracle import Market, Daemon            # doctest: +SKIP
    >>> with Market.open(identity="oracle1") as m:           # doctest: +SKIP
    ...     Daemon(m).run()

:mod:`.market` talks to the contracts, :mod:`.deploy` installs them once per consortium,
:mod:`.metrics` is the single adapter to the audit library, :mod:`.daemon` is the loop.
"""

from mltrail.oracle.daemon import Daemon
from mltrail.oracle.deploy import deploy_network, join_network
from mltrail.oracle.market import Market, metrics_mask
from mltrail.oracle.metrics import AuditOptions, Metrics, measure

__all__ = ["AuditOptions", "Daemon", "Market", "Metrics", "deploy_network", "join_network",
           "measure", "metrics_mask"]
