"""The store: current check state and history, feedback events and counters, cases."""

from monitor.store.db import Store, StoreError, UtcDateTime, metadata, utcnow

__all__ = ["Store", "StoreError", "UtcDateTime", "metadata", "utcnow"]
