"""Imports every module that declares tables, so that ``metadata`` is complete."""

from monitor.store import cases, checks, feedback, jobs  # noqa: F401
