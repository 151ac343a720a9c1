"""The store: every table (``schema``), the engine (``db``), and one module of query functions
per area (``checks``, ``feedback``, ``volume``, ``measures``, ``series``, ``cases``, ``jobs``,
``leases``, ``retention``). Nothing outside this package runs SQL; see docs/store.md."""

from checks.errors import StoreConflict, StoreError, StoreUnavailable
from monitor.store.db import Store, Tx, safe_url
from monitor.store.schema import BUCKET_SECONDS, UtcDateTime, metadata, utcnow

__all__ = [
    "BUCKET_SECONDS",
    "Store",
    "StoreConflict",
    "StoreError",
    "StoreUnavailable",
    "Tx",
    "UtcDateTime",
    "metadata",
    "safe_url",
    "utcnow",
]
