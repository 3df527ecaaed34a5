"""mltrail: accountable machine learning on a shared provenance ledger."""

__version__ = "0.1.0"
