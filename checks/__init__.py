"""Reputation checks: given a target and a resolver, return results.

A check never stores, schedules or notifies; it returns :class:`CheckResult`
values whose ``status`` is one of ``ok``, ``problem`` or ``unknown``.
"""

from checks.result import OK, PROBLEM, UNKNOWN, CheckResult, Status, worst_exit_code

__all__ = ["OK", "PROBLEM", "UNKNOWN", "CheckResult", "Status", "worst_exit_code"]
