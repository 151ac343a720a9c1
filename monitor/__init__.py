"""repmon: the application — config and inventory, store, time series, rules, cases, CLI, API."""

__version__ = "0.1.0"
