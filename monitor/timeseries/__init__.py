"""Time series for the dashboards: point builders (schema) and the durable writer.

Collectors and the daemon build points with :mod:`monitor.timeseries.schema`
and hand them to the writer from :func:`open_writer`. See docs/timeseries.md.
"""

from monitor.timeseries.schema import (
    MAILBOX_PROVIDERS,
    case_points,
    check_points,
    dmarc_points,
    feedback_points,
    receiving_domain_tag,
    sent_points,
    sweep_points,
)
from monitor.timeseries.writer import (
    BufferBusy,
    InfluxWriter,
    NullWriter,
    PointWriter,
    open_writer,
)

__all__ = [
    "MAILBOX_PROVIDERS",
    "BufferBusy",
    "InfluxWriter",
    "NullWriter",
    "PointWriter",
    "case_points",
    "check_points",
    "dmarc_points",
    "feedback_points",
    "open_writer",
    "receiving_domain_tag",
    "sent_points",
    "sweep_points",
]
