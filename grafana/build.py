"""Writes the dashboards in ``grafana/dashboards/`` from the definitions below.

Run ``python grafana/build.py`` after a change and commit the JSON with it; a
test fails when the committed JSON differs from what this script writes. Every
panel's title is the question it answers. The InfluxQL runs on InfluxDB 1.x,
2.x (DBRP mapping) and 3.x; the schema it reads is docs/timeseries.md.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from panels import (  # noqa: E402
    BOUNCE_STEPS,
    COMPLAINT_STEPS,
    LISTED_MAPPINGS,
    LISTING_WINDOW,
    STATE_MAPPINGS,
    dashboard,
    panel,
    query_variable,
    render_json,
    target,
)

OUT = Path(__file__).resolve().parent / "dashboards"

#: last answer per (target, zone) within the sweep window, unknown answers carry no ``listed``
_LISTED_NOW = """SELECT last("listed") AS "listed" FROM "dnsbl"
    WHERE time > now() - $listing_window GROUP BY "target", "zone", "severity", "target_type" """


def overview() -> dict[str, Any]:
    panels = [
        panel(
            "stat",
            "How many of our IPs and domains are listed right now?",
            "Targets listed on at least one blocklist zone in the latest sweep. "
            "Unknown answers (timeouts, refused queries) count as their last known state.",
            [
                target(
                    f"""SELECT count("l") FROM (SELECT max("listed") AS "l" FROM ({_LISTED_NOW})
                GROUP BY "target", "target_type") WHERE "l" > 0 GROUP BY "target_type" """,
                    "$tag_target_type listed",
                )
            ],  # fmt: skip
            (0, 0, 6, 5),
            steps=[("green", None), ("red", 1)],
        ),
        panel(
            "stat",
            "How many new listings appeared in the last 24 hours?",
            "(target, zone) pairs that went from not listed to listed in the last 24 h.",
            [
                target(
                    """SELECT count("d") AS "new listings" FROM (SELECT difference("listed") AS "d"
                FROM "dnsbl" WHERE time > now() - 24h GROUP BY "target", "zone") WHERE "d" > 0""",
                    "new listings",
                )
            ],  # fmt: skip
            (6, 0, 6, 5),
            steps=[("green", None), ("orange", 1)],
        ),
        panel(
            "bargauge",
            "Which blocklist zones list us right now, and how severe is it?",
            "Active listings (IP or domain on a zone) per zone and severity, latest sweep.",
            [
                target(
                    f"""SELECT sum("listed") FROM ({_LISTED_NOW}) WHERE "severity" <> 'none'
                GROUP BY "zone", "severity" """,
                    "$tag_zone ($tag_severity)",
                )
            ],  # fmt: skip
            (12, 0, 12, 10),
            steps=[("green", None), ("orange", 1), ("red", 5)],
        ),
        panel(
            "timeseries",
            "How many cases are open, by severity?",
            "Open cases per severity at each evaluation; from the cases measurement.",
            [
                target(
                    """SELECT sum("open") FROM (SELECT last("open") AS "open" FROM "cases"
                WHERE $timeFilter GROUP BY time($__interval), "severity", "type" fill(none))
                GROUP BY time($__interval), "severity" fill(none)""",
                    "$tag_severity",
                )
            ],
            (0, 5, 12, 5),
            interval="1h",
            stack=True,
            bars=True,
        ),
        panel(
            "timeseries",
            "Is any pool's complaint rate approaching 0.1 % or 0.3 %?",
            "Complaints (feedback-loop reports) / messages sent, per pool and hour, in percent. "
            "Gmail and Yahoo ask senders to stay below 0.1 % and never reach 0.3 %. "
            "A rate on little volume means little: read it with the sent volume.",
            [
                target(
                    """SELECT sum("complaint") / sum("sent") * 100 FROM "feedback"
                WHERE $timeFilter GROUP BY time($__interval), "pool" fill(none)""",
                    "$tag_pool",
                )
            ],
            (0, 10, 12, 8),
            unit="percent",
            steps=COMPLAINT_STEPS,
            interval="1h",
        ),
        panel(
            "timeseries",
            "Is any pool's hard-bounce rate approaching 5 % or 10 %?",
            "Hard bounces (bad-mailbox, bad-domain, inactive-mailbox) / messages sent, per pool "
            "and hour, in percent. Amazon SES reviews an account at 5 % and pauses it at 10 %.",
            [
                target(
                    """SELECT sum("hard_bounce") / sum("sent") * 100 FROM "feedback"
                WHERE $timeFilter GROUP BY time($__interval), "pool" fill(none)""",
                    "$tag_pool",
                )
            ],
            (12, 10, 12, 8),
            unit="percent",
            steps=BOUNCE_STEPS,
            interval="1h",
        ),
        panel(
            "timeseries",
            "Which blocklist zones fail to answer?",
            "Share of queries per zone that ended unknown (timeout, SERVFAIL, REFUSED, a "
            "refused-query answer): those targets were not checked, they are not clean.",
            [
                target(
                    """SELECT sum("unknown") / sum("queries") * 100 FROM "dnsbl_zone"
                WHERE $timeFilter GROUP BY time($__interval), "zone" fill(none)""",
                    "$tag_zone",
                )
            ],
            (0, 18, 12, 8),
            unit="percent",
            steps=[("green", None), ("orange", 5), ("red", 50)],
            interval="1h",
        ),
        panel(
            "timeseries",
            "Do the sweeps finish well within their interval?",
            "Wall-clock duration of each sweep, by kind (dnsbl, hygiene).",
            [
                target(
                    """SELECT max("duration_s") FROM "sweep" WHERE $timeFilter
                GROUP BY time($__interval), "kind" fill(none)""",
                    "$tag_kind",
                )
            ],
            (12, 18, 12, 8),
            unit="s",
            interval="1h",
        ),
    ]
    return dashboard(
        "repmon-overview",
        "repmon / Overview",
        "Blocklist listings, complaint and bounce rates per pool, blocklist health, open cases.",
        panels,
        [LISTING_WINDOW],
    )


def sending_ip() -> dict[str, Any]:
    where = """"sending_ip" = '$ip' AND $timeFilter"""
    panels = [
        panel(
            "state-timeline",
            "On which blocklists is $ip listed, and since when?",
            "Listing state per zone over time. Gaps are sweeps whose answer was unknown.",
            [
                target(
                    """SELECT max("listed") FROM "dnsbl" WHERE "target" = '$ip' AND $timeFilter
                GROUP BY time($__interval), "zone" fill(none)""",
                    "$tag_zone",
                )
            ],
            (0, 0, 24, 7),
            unit="none",
            steps=[("green", None), ("red", 1)],
            mappings=LISTED_MAPPINGS,
            interval="1h",
        ),
        panel(
            "timeseries",
            "Are $ip's complaint and hard-bounce rates within the limits?",
            "Complaints and hard bounces / messages sent from this IP, per hour, in percent. "
            "Threshold lines: complaints 0.1 % / 0.3 % (hard bounces: 5 % / 10 %).",
            [
                target(
                    f"""SELECT sum("complaint") / sum("sent") * 100 AS "complaint rate",
                sum("hard_bounce") / sum("sent") * 100 AS "hard-bounce rate" FROM "feedback"
                WHERE {where} GROUP BY time($__interval) fill(none)""",
                    "$col",
                )
            ],
            (0, 7, 12, 8),
            unit="percent",
            steps=COMPLAINT_STEPS,
            interval="1h",
        ),
        panel(
            "timeseries",
            "Why do $ip's messages bounce?",
            "Bounced recipients per bounce category, per hour.",
            [
                target(
                    f"""SELECT sum("bounce") FROM "feedback" WHERE {where}
                GROUP BY time($__interval), "category" fill(none)""",
                    "$tag_category",
                )
            ],
            (12, 7, 12, 8),
            interval="1h",
            stack=True,
            bars=True,
        ),
        panel(
            "bargauge",
            "Which mailbox providers bounce or complain about $ip?",
            "Bounces and complaints per receiving domain over the time range "
            "(domains outside the provider list are counted as 'other').",
            [
                target(
                    f"""SELECT sum("bounce") AS "bounces", sum("complaint") AS "complaints"
                FROM "feedback" WHERE {where} GROUP BY "receiving_domain" """,
                    "$tag_receiving_domain $col",
                )
            ],  # fmt: skip
            (0, 15, 12, 9),
        ),
        panel(
            "timeseries",
            "How much mail from $ip do receivers see, and does it pass DMARC?",
            "Messages per DMARC aggregate report period, by alignment (pass = DKIM or SPF "
            "passed aligned); the receivers' own count.",
            [
                target(
                    """SELECT sum("messages") FROM "dmarc" WHERE "source_ip" = '$ip' AND $timeFilter
                GROUP BY time($__interval), "alignment" fill(none)""",
                    "$tag_alignment",
                )
            ],
            (12, 15, 12, 9),
            interval="1h",
            stack=True,
            bars=True,
        ),
        panel(
            "state-timeline",
            "Does $ip have a valid PTR and is it authorized by SPF?",
            "Hygiene checks of this IP (ptr: forward-confirmed reverse DNS; spf-authorizes: "
            "the pool's domains' SPF allows it).",
            [
                target(
                    """SELECT last("state") FROM "hygiene" WHERE "target" = '$ip' AND $timeFilter
                GROUP BY time($__interval), "check" fill(previous)""",
                    "$tag_check",
                )
            ],
            (0, 24, 24, 5),
            unit="none",
            steps=[("green", None), ("yellow", 1), ("red", 2)],
            mappings=STATE_MAPPINGS,
            interval="1h",
        ),
    ]
    ip = query_variable(
        "ip",
        "Sending IP",
        """SHOW TAG VALUES FROM "dnsbl" WITH KEY = "target" WHERE "target_type" = 'ip'""",
    )
    return dashboard(
        "repmon-sending-ip",
        "repmon / Sending IP",
        "Everything about one sending IP: listings, feedback, DMARC volume, PTR and SPF.",
        panels,
        [ip],
    )


def _hygiene_panel(check: str, title: str, description: str, y: int) -> dict[str, Any]:
    return panel(
        "state-timeline",
        title,
        description,
        [
            target(
                f"""SELECT last("state") FROM "hygiene" WHERE "check" = '{check}'
            AND "target" =~ /^$domain$/ AND $timeFilter
            GROUP BY time($__interval), "target" fill(previous)""",
                "$tag_target",
            )
        ],  # fmt: skip
        (0, y, 24, 5),
        unit="none",
        steps=[("green", None), ("yellow", 1), ("red", 2)],
        mappings=STATE_MAPPINGS,
        interval="1h",
    )


def domains() -> dict[str, Any]:
    panels = [
        _hygiene_panel(
            "spf",
            "Does each domain publish a valid SPF record?",
            "SPF check per sending domain: ok, problem (missing, broken, too many "
            "lookups) or unknown (DNS failure).",
            0,
        ),
        _hygiene_panel(
            "dmarc",
            "Does each domain publish a valid DMARC policy?",
            "DMARC check per sending domain (p=none is enough for the bulk-sender "
            "rules of Gmail, Yahoo and Microsoft).",
            5,
        ),
        _hygiene_panel(
            "dkim",
            "Do each domain's DKIM selectors publish valid keys?",
            "DKIM check per sending domain: worst state over its selectors.",
            10,
        ),
        panel(
            "state-timeline",
            "Are MX, MTA-STS, TLS-RPT and DNSSEC in order for each domain?",
            "The other record checks per (domain, check): ok, problem or unknown.",
            [
                target(
                    """SELECT last("state") FROM "hygiene"
                    WHERE "check" =~ /^(mx|mta-sts|tls-rpt|bimi|dnssec)$/
                    AND "target" =~ /^$domain$/ AND $timeFilter
                    GROUP BY time($__interval), "target", "check" fill(previous)""",
                    "$tag_target $tag_check",
                )
            ],
            (0, 15, 24, 8),
            unit="none",
            steps=[("green", None), ("yellow", 1), ("red", 2)],
            mappings=STATE_MAPPINGS,
            interval="1h",
        ),
        panel(
            "state-timeline",
            "Does every sending IP have a forward-confirmed PTR?",
            "PTR check per sending IP (reverse DNS name whose A/AAAA points back).",
            [
                target(
                    """SELECT last("state") FROM "hygiene" WHERE "check" = 'ptr' AND $timeFilter
                GROUP BY time($__interval), "target" fill(previous)""",
                    "$tag_target",
                )
            ],
            (0, 23, 24, 8),
            unit="none",
            steps=[("green", None), ("yellow", 1), ("red", 2)],
            mappings=STATE_MAPPINGS,
            interval="1h",
        ),
        panel(
            "timeseries",
            "How much of each domain's mail passes DMARC at the receivers?",
            "Messages in DMARC aggregate reports per header-from domain and alignment result.",
            [
                target(
                    """SELECT sum("messages") FROM "dmarc" WHERE "header_from" =~ /^$domain$/
                    AND $timeFilter GROUP BY time($__interval), "header_from", "alignment"
                    fill(none)""",
                    "$tag_header_from $tag_alignment",
                )
            ],
            (0, 31, 24, 8),
            interval="1h",
            stack=True,
            bars=True,
        ),
    ]
    domain = query_variable(
        "domain",
        "Domain",
        """SHOW TAG VALUES FROM "hygiene" WITH KEY = "target" WHERE "target_type" = 'domain'""",
        multi=True,
    )
    return dashboard(
        "repmon-domains",
        "repmon / Domains",
        "SPF, DMARC, DKIM and PTR state over time, and DMARC pass rates per domain.",
        panels,
        [domain],
        time_from="now-7d",
    )


def feedback() -> dict[str, Any]:
    where = """"pool" =~ /^$pool$/ AND $timeFilter"""
    panels = [
        panel(
            "timeseries",
            "Why does our mail bounce?",
            "Bounced recipients per bounce category (repmon's taxonomy), per hour.",
            [
                target(
                    f"""SELECT sum("bounce") FROM "feedback" WHERE {where}
                GROUP BY time($__interval), "category" fill(none)""",
                    "$tag_category",
                )
            ],
            (0, 0, 12, 8),
            interval="1h",
            stack=True,
            bars=True,
        ),
        panel(
            "timeseries",
            "Which mailbox providers bounce our mail?",
            "Bounced recipients per receiving domain; domains outside the provider list are "
            "'other'.",
            [
                target(
                    f"""SELECT sum("bounce") FROM "feedback" WHERE {where}
                GROUP BY time($__interval), "receiving_domain" fill(none)""",
                    "$tag_receiving_domain",
                )
            ],  # fmt: skip
            (12, 0, 12, 8),
            interval="1h",
            stack=True,
        ),
        panel(
            "timeseries",
            "Which providers are blocking us for reputation or policy reasons?",
            "Bounces in the blocklisted, reputation, policy, spam-content and rate-limited "
            "categories per receiving domain: the reputation signal among bounces.",
            [
                target(
                    f"""SELECT sum("bounce") FROM "feedback" WHERE {where}
                AND "category" =~ /^(blocklisted|reputation|policy|spam-content|rate-limited)$/
                GROUP BY time($__interval), "receiving_domain" fill(none)""",
                    "$tag_receiving_domain",
                )
            ],  # fmt: skip
            (0, 8, 12, 8),
            interval="1h",
            stack=True,
        ),
        panel(
            "timeseries",
            "What do recipients complain about?",
            "Complaints per feedback type (ARF Feedback-Type: abuse, fraud, virus ...), per hour.",
            [
                target(
                    f"""SELECT sum("complaint") FROM "feedback" WHERE {where}
                GROUP BY time($__interval), "category" fill(none)""",
                    "$tag_category",
                )
            ],
            (12, 8, 12, 8),
            interval="1h",
            stack=True,
            bars=True,
        ),
        panel(
            "table",
            "Which sending IPs get the most complaints?",
            "Top 10 sending IPs by complaints over the time range.",
            [
                target(
                    f"""SELECT top("complaints", "sending_ip", 10) AS "complaints" FROM
                (SELECT sum("complaint") AS "complaints" FROM "feedback" WHERE {where}
                GROUP BY "sending_ip")""",
                    table=True,
                )
            ],  # fmt: skip
            (0, 16, 12, 9),
        ),
        panel(
            "table",
            "Which sending IPs bounce the most?",
            "Top 10 sending IPs by bounced recipients over the time range.",
            [
                target(
                    f"""SELECT top("bounces", "sending_ip", 10) AS "bounces" FROM
                (SELECT sum("bounce") AS "bounces" FROM "feedback" WHERE {where}
                GROUP BY "sending_ip")""",
                    table=True,
                )
            ],  # fmt: skip
            (12, 16, 12, 9),
        ),
    ]
    pool = query_variable(
        "pool", "Pool", """SHOW TAG VALUES FROM "feedback" WITH KEY = "pool" """, multi=True
    )
    return dashboard(
        "repmon-feedback",
        "repmon / Feedback",
        "Bounces by category and mailbox provider, complaints by feedback type, top IPs.",
        panels,
        [pool],
    )


DASHBOARDS = {"overview": overview, "sending-ip": sending_ip, "domains": domains,
              "feedback": feedback}  # fmt: skip


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, build in DASHBOARDS.items():
        board = build()
        (OUT / f"{name}.json").write_text(render_json(board))
        print(f"wrote dashboards/{name}.json: {len(board['panels'])} panels")


if __name__ == "__main__":
    main()
