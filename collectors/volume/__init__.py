"""Sent volume: messages sent per sending IP and hour, the rate rules' denominator.

Counts come from ``repmon volume add``, ``POST /v1/volume`` and the Postfix log reader
(:mod:`collectors.volume.postfix_log`). It owns no config section (the Postfix tag map is
``[rules.volume] postfix_ips``). See README.md beside this file.
"""

from collectors.unit import Collector

UNIT = Collector(
    name="volume",
    title="sent volume per sending IP and hour, from the MTA or its log",
)

__all__ = ["UNIT"]
