"""The always-on monitor (``repmon run``): sink, scheduler, rules and HTTP API in one process."""

from monitor.daemon.monitor import JOBS, Monitor

__all__ = ["JOBS", "Monitor"]
