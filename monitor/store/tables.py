"""Imports every module that declares tables, so that ``metadata`` is complete."""

from monitor.store import checks, feedback  # noqa: F401
