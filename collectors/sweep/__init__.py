"""Scheduled sweeps: every inventory IP and domain through the checks, results to a recorder.

A sweep never touches SQL or InfluxDB itself: it hands each batch of results
to a :class:`Recorder` (``monitor.recorder`` puts them in the store and the
time series). Sweeps: ``dnsbl`` (collectors/sweep/dnsbl.py) and ``hygiene``
(collectors/sweep/hygiene.py).
"""

from collectors.sweep.base import Progress, Recorder, SweepSummary

__all__ = ["Progress", "Recorder", "SweepSummary"]
