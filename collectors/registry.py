"""Every collector and every check name repmon reports, with the document that describes it.

A test keeps this complete: each collector module imports and is described in its document,
and each check name is documented and produced by a check.
"""

from __future__ import annotations

#: collector -> (module, document)
COLLECTORS: dict[str, tuple[str, str]] = {
    "dnsbl sweep": ("collectors.sweep.dnsbl", "docs/dnsbl.md"),
    "hygiene sweep": ("collectors.sweep.hygiene", "docs/hygiene.md"),
    "feedback sink": ("collectors.sink", "docs/sink.md"),
    "feedback intake": ("collectors.feedback", "docs/feedback.md"),
    "sent volume": ("collectors.volume", "docs/cases.md"),
    "postfix log": ("collectors.postfix_log", "docs/cases.md"),
}

#: check name (the ``check`` of a result) -> document
CHECKS: dict[str, str] = {
    "dnsbl": "docs/dnsbl.md",
    "spf": "docs/hygiene.md",
    "dmarc": "docs/hygiene.md",
    "dkim": "docs/hygiene.md",
    "mx": "docs/hygiene.md",
    "mta-sts": "docs/hygiene.md",
    "tls-rpt": "docs/hygiene.md",
    "bimi": "docs/hygiene.md",
    "dnssec": "docs/hygiene.md",
    "ptr": "docs/hygiene.md",
    "spf-authorizes": "docs/hygiene.md",
}
