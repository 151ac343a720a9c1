"""Writes the dashboards in ``grafana/dashboards/`` from the definitions below.

Run ``python grafana/build.py`` after a change and commit the JSON with it; a
test fails when the committed JSON differs from what this script writes. Every
panel's title is the question it answers. The InfluxQL runs on InfluxDB 1.x,
2.x (DBRP mapping) and 3.x; the schema it reads is docs/timeseries.md.

Drill-down: overview -> pool -> sending IP -> customer (data links on series and
table cells, header links carrying the variables). Colours: ``panels.SEVERITY_COLORS``
for every severity, nothing else in those colours.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

import abuse_board  # noqa: E402
from panels import (  # noqa: E402
    ALIGNMENT_OVERRIDES,
    AUTH_MIN_PERCENT,
    AUTH_STEPS,
    BOUNCE_STEPS,
    BOUNCE_THRESHOLDS,
    COMPLAINT_STEPS,
    COMPLAINT_THRESHOLDS,
    FAIR_COLOR,
    GMAIL_SPAM_STEPS,
    GMAIL_SPAM_THRESHOLDS,
    LISTING_WINDOW,
    MIN_VOLUME,
    NEUTRAL_COLOR,
    OK_COLOR,
    SEVERITY_COLORS,
    SEVERITY_LEVEL_MAPPINGS,
    STATE_MAPPINGS,
    STATE_STEPS,
    UNKNOWN_COLOR,
    column,
    constant,
    dashboard,
    dashboard_link,
    dashboard_url,
    data_link,
    level_mappings,
    listings_query,
    organize,
    panel,
    query_variable,
    rate_table_query,
    render_json,
    severity_levels,
    severity_overrides,
    target,
)

from checks.dnsbl.catalogue import CATALOGUE  # noqa: E402
from monitor.timeseries.providers import FILTER_LEVELS, REPUTATION_LEVELS  # noqa: E402

OUT = HERE / "dashboards"

OVERVIEW, POOL, SENDING_IP, CUSTOMER, DOMAINS, FEEDBACK, PROVIDERS = (
    "repmon-overview", "repmon-pool", "repmon-sending-ip", "repmon-customer", "repmon-domains",
    "repmon-feedback", "repmon-providers",
)  # fmt: skip

#: the filter of the dashboards with multi-value ``customer`` and ``pool`` variables
FILTER = """"pool" =~ /^$pool$/ AND "customer" =~ /^$customer$/"""


# --- links ---------------------------------------------------------------------------------
def _to_ip(value: str = "${__value.raw}") -> dict[str, Any]:
    return data_link(f"Sending IP {value}", dashboard_url(SENDING_IP, ip=value))


def _to_pool(value: str = "${__value.raw}") -> dict[str, Any]:
    return data_link(f"Pool {value}", dashboard_url(POOL, pool=value))


def _to_customer(value: str = "${__value.raw}") -> dict[str, Any]:
    return data_link(f"Customer {value}", dashboard_url(CUSTOMER, customer=value))


def _to_domain(value: str = "${__value.raw}") -> dict[str, Any]:
    return data_link(f"Domain {value}", dashboard_url(DOMAINS, domain=value))


# --- delist links: the zone catalogue's delist URL per zone, as value mappings --------------
def _delist_mappings() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(text, url-prefix) value mappings keyed by zone. The delist column shows the site; the
    hidden ``delist_url`` column maps the zone to the URL up to the target, and the link is
    ``${__data.fields.delist_url:raw}${__data.fields.target}``. A page without the target in
    its URL gets it as a ``#fragment`` (ignored by the site). Zones outside the built-in
    catalogue (``[[dnsbl.zones]]`` of your own) have no known page: ``repmon status`` has it.
    """
    text: dict[str, Any] = {}
    url: dict[str, Any] = {}
    for i, zone in enumerate(z for z in CATALOGUE if z.delist):
        prefix, found, suffix = zone.delist.partition("{target}")
        if found and suffix:
            raise ValueError(f"{zone.label}: the target must end the delist URL: {zone.delist}")
        text[zone.label] = {"text": f"{urlsplit(zone.delist).netloc} ↗", "index": i}
        url[zone.label] = {"text": prefix if found else zone.delist + "#", "index": i}
    unknown = "no delist page known: see repmon status"
    return (
        [
            {"type": "value", "options": text},
            {"type": "regex", "options": {"pattern": ".*", "result": {"text": unknown}}},
        ],
        [
            {"type": "value", "options": url},
            {"type": "regex", "options": {"pattern": ".*", "result": {"text": "#"}}},
        ],
    )


DELIST_TEXT, DELIST_URL = _delist_mappings()
DELIST_LINK = data_link(
    "Delist / look up ${__data.fields.target} at ${__data.fields.zone}",
    "${__data.fields.delist_url:raw}${__data.fields.target}",
    new_tab=True,
)
LISTING_COLUMNS = ["target", "zone", "severity", "age", "pool", "customer", "delist", "delist_url"]


def listings_table(
    title: str, description: str, where: str, grid: tuple[int, int, int, int], kind: str = "ip"
) -> dict[str, Any]:
    """The IP x zone (or domain x zone) table: what is listed now, where, how severe, for how
    long, whose, and the delist link."""
    to_target = _to_ip() if kind == "ip" else _to_domain()
    return panel(
        "table",
        title,
        description
        + " Severity is the listing's (from the zone's answer code); 'listed for' runs from the "
        "first listed answer after a not-listed one, or from the start of the time range when "
        "it was listed all along, to the last sweep. Unknown answers neither start nor end a "
        "listing. Click the delist column for the zone's delisting / lookup page.",
        [target(listings_query(f""""target_type" = '{kind}' AND {where}"""), table=True)],
        grid,
        overrides=[
            column("target", "IP" if kind == "ip" else "domain", links=[to_target]),
            column("zone", "zone"),
            column("severity", "severity", mappings=SEVERITY_LEVEL_MAPPINGS, background=True),
            column("age", "listed for", unit="dtdurations"),
            column("pool", "pool", links=[_to_pool()]),
            column("customer", "customer", links=[_to_customer()]),
            column("delist", "delist", mappings=DELIST_TEXT, links=[DELIST_LINK]),
            column("delist_url", hidden=True, mappings=DELIST_URL),
        ],
        transformations=[organize(LISTING_COLUMNS)],
        sort_by=("severity", True),
    )


RATE_COLUMNS = [
    "sending_ip", "pool", "customer", "sent", "complaints", "complaint_rate", "hard_bounces",
    "hard_bounce_rate",
]  # fmt: skip


def rate_table(
    title: str,
    description: str,
    where: str,
    grid: tuple[int, int, int, int],
    key: str = "sending_ip",
    by: str = "complaint_rate",
    limit: int | None = 10,
) -> dict[str, Any]:
    """A "top" table: volume and both rates next to pool and customer, links to drill down."""
    return panel(
        "table",
        title,
        description
        + f" Over the dashboard's time range (the rules judge the last 24 h: pick that range to "
        f"see what they see); rows that sent fewer than {MIN_VOLUME:,} messages (the rules' "
        "min_volume) are left out: a rate on little volume means little. Rates are coloured "
        "by the severity of the case repmon's rule opens at that rate.",
        [target(rate_table_query(where, key, by, limit), table=True)],
        grid,
        overrides=[
            column("sending_ip", "IP", links=[_to_ip()]),
            column("pool", "pool", links=[_to_pool()]),
            column("customer", "customer", links=[_to_customer()]),
            column("sent", "sent", unit="short"),
            column("complaints", "complaints", unit="short"),
            _rate_column("complaint_rate", "complaint rate", COMPLAINT_STEPS),
            column("hard_bounces", "hard bounces", unit="short"),
            _rate_column("hard_bounce_rate", "hard-bounce rate", BOUNCE_STEPS),
        ],
        transformations=[organize([c for c in RATE_COLUMNS if c != "sending_ip" or key == c])],
        sort_by=("complaint rate" if by == "complaint_rate" else "hard-bounce rate", True),
    )


def _rate_column(name: str, display: str, steps: list[tuple[str, float | None]]) -> dict[str, Any]:
    out = column(name, display, unit="percent", decimals=3)
    out["properties"] += [
        {
            "id": "thresholds",
            "value": {"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in steps]},
        },
        {"id": "color", "value": {"mode": "thresholds"}},
        {"id": "custom.cellOptions", "value": {"type": "color-text"}},
    ]
    return out


def rate_panel(
    kind: str,
    what: str,
    where: str,
    by: str,
    grid: tuple[int, int, int, int],
    links: list[dict[str, Any]] | None = None,
    extra: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Complaint or hard-bounce rate over time, on its own axis with its own rule thresholds."""
    if kind == "complaint":
        limits, steps, field = COMPLAINT_THRESHOLDS, COMPLAINT_STEPS, "complaint"
        title = f"Is the complaint rate of {what} below 0.1 % (medium) and 0.3 % (critical)?"
        text = (
            "Complaints (feedback-loop reports) / messages sent, per hour, in percent. "
            "Dashed lines: the severity of the case [rules.complaints] opens (defaults: medium "
            "at 0.1 %, critical at 0.3 %: Gmail and Yahoo ask bulk senders to stay below 0.1 % "
            "and never reach 0.3 %)."
        )
    else:
        limits, steps, field = BOUNCE_THRESHOLDS, BOUNCE_STEPS, "hard_bounce"
        title = f"Is the hard-bounce rate of {what} below 5 % (medium) and 10 % (critical)?"
        text = (
            "Hard bounces (bad-mailbox, bad-domain, inactive-mailbox) / messages sent, per "
            "hour, in percent. Dashed lines: the severity of the case [rules.bounces] opens "
            "(defaults: medium at 5 %, critical at 10 %: Amazon SES reviews at 5 %, pauses at "
            "10 %)."
        )
    alias = f"$tag_{by}" if by else what
    group = f', "{by}"' if by else ""
    return panel(
        "timeseries",
        title,
        text + " Lines take the colour of the range they are in (green below the first line). "
        "The rules judge a rate only above min_volume messages: read it with the volume.",
        [
            target(
                f"""SELECT 100.0 * sum("{field}") / sum("sent") FROM "feedback" WHERE {where}
                AND $timeFilter GROUP BY time($__interval){group} fill(none)""",
                alias,
            ),
            *(extra or []),
        ],
        grid,
        unit="percent",
        steps=steps,
        interval="1h",
        soft_max=max(limits.values()) * 1.1,
        links=links,
        by_threshold=True,
    )


def volume_panel(
    title: str, where: str, by: str, grid: tuple[int, int, int, int], links: list[dict[str, Any]]
) -> dict[str, Any]:
    return panel(
        "timeseries",
        title,
        "Messages sent per hour (repmon's sent-volume intake: the denominator of every rate).",
        [
            target(
                f"""SELECT sum("sent") FROM "feedback" WHERE {where} AND $timeFilter
                GROUP BY time($__interval), "{by}" fill(none)""",
                f"$tag_{by}",
            )
        ],
        grid,
        interval="1h",
        stack=True,
        bars=True,
        links=links,
    )


# --- dashboards ----------------------------------------------------------------------------
def _customer_var(multi: bool = True) -> dict[str, Any]:
    return query_variable(
        "customer",
        "Customer",
        """SHOW TAG VALUES FROM "hygiene" WITH KEY = "customer" WHERE "customer" != 'none'""",
        multi=multi,
    )


def _pool_var() -> dict[str, Any]:
    return query_variable(
        "pool",
        "Pool",
        """SHOW TAG VALUES FROM "hygiene" WITH KEY = "pool"
        WHERE "customer" =~ /^$customer$/ AND "pool" != 'none'""",
        multi=True,
    )


def overview() -> dict[str, Any]:
    panels = [
        panel(
            "stat",
            "How many of our IPs and domains are listed right now?",
            "Targets listed on at least one blocklist zone, by the last known answer of each "
            "(target, zone) within the sweep window. Unknown answers (timeouts, refused queries) "
            "count as the last known state.",
            [
                target(
                    f"""SELECT count("l") FROM (SELECT max("listed") AS "l" FROM
                (SELECT last("listed") AS "listed" FROM "dnsbl"
                WHERE time > now() - $listing_window AND {FILTER}
                GROUP BY "target", "zone", "target_type") GROUP BY "target", "target_type")
                WHERE "l" > 0 GROUP BY "target_type" """,
                    "$tag_target_type listed",
                )
            ],  # fmt: skip
            (0, 0, 6, 5),
            color=NEUTRAL_COLOR,
        ),
        panel(
            "stat",
            "How many new listings appeared in the last 24 hours?",
            "(target, zone) pairs that went from not listed to listed in the last 24 h.",
            [
                target(
                    f"""SELECT count("d") AS "new listings" FROM (SELECT difference("listed") AS "d"
                FROM "dnsbl" WHERE time > now() - 24h AND {FILTER} GROUP BY "target", "zone")
                WHERE "d" > 0""",
                    "new listings",
                )
            ],  # fmt: skip
            (6, 0, 6, 5),
            color=NEUTRAL_COLOR,
        ),
        panel(
            "bargauge",
            "Which blocklist zones list us right now, and how severe is it?",
            "Targets (IP or domain) listed per zone, by the severity of the listing (the "
            "zone's answer code), from the last known answer within the sweep window. Bars are "
            "coloured by severity: critical red, high orange, medium yellow, low blue, info grey.",
            [
                target(
                    f"""SELECT count("listed") FROM (SELECT last("listed") AS "listed", "severity"
                FROM "dnsbl" WHERE time > now() - $listing_window AND {FILTER}
                GROUP BY "target", "zone") WHERE "listed" > 0 GROUP BY "zone", "severity" """,
                    "$tag_zone ($tag_severity)",
                )
            ],  # fmt: skip
            (12, 0, 12, 10),
            color=NEUTRAL_COLOR,
            overrides=severity_overrides(r"/\({sev}\)$/"),
        ),
        panel(
            "timeseries",
            "How many cases are open, by severity?",
            "Open cases per severity at each evaluation, all pools and customers (the cases "
            "measurement has no pool or customer tag).",
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
            overrides=severity_overrides(),
        ),
        listings_table(
            "Which of our IPs are listed on which zone (IP × zone), since when, and where do we "
            "delist?",
            "Every (IP, zone) listed now.",
            FILTER,
            (0, 10, 24, 9),
        ),
        listings_table(
            "Which of our domains are listed on which zone, since when?",
            "Every (domain, zone) listed now.",
            FILTER,
            (0, 19, 24, 5),
            kind="domain",
        ),
        rate_panel(
            "complaint",
            "each pool",
            FILTER,
            "pool",
            (0, 24, 12, 8),
            links=[_to_pool("${__field.labels.pool}")],
        ),
        rate_panel(
            "bounce",
            "each pool",
            FILTER,
            "pool",
            (12, 24, 12, 8),
            links=[_to_pool("${__field.labels.pool}")],
        ),
        volume_panel(
            "How much mail does each pool send?",
            FILTER,
            "pool",
            (0, 32, 12, 8),
            [_to_pool("${__field.labels.pool}")],
        ),
        rate_table(
            "Which sending IPs have the highest complaint rates?",
            "The 10 sending IPs with the highest complaint rate.",
            FILTER,
            (12, 32, 12, 8),
        ),
        panel(
            "timeseries",
            "Which blocklist zones fail to answer?",
            "Share of queries per zone that ended unknown (timeout, SERVFAIL, REFUSED, a "
            "refused-query answer): those targets were not checked, they are not clean. Dashed "
            "lines (purple, the colour of 'unknown'): 5 % and 50 %.",
            [
                target(
                    """SELECT 100.0 * sum("unknown") / sum("queries") FROM "dnsbl_zone"
                WHERE $timeFilter GROUP BY time($__interval), "zone" fill(none)""",
                    "$tag_zone",
                )
            ],
            (0, 40, 12, 8),
            unit="percent",
            steps=[("transparent", None), (UNKNOWN_COLOR, 5), (UNKNOWN_COLOR, 50)],
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
            (12, 40, 12, 8),
            unit="s",
            interval="1h",
        ),
    ]
    return dashboard(
        OVERVIEW,
        "repmon / Overview",
        "Blocklist listings (IP × zone, severity, age, delist links), complaint and bounce rates "
        "per pool, the worst IPs, blocklist health, open cases. Filter by customer and pool; "
        "click a pool, IP or customer to drill down.",
        panels,
        [_customer_var(), _pool_var(), LISTING_WINDOW],
    )


def pool() -> dict[str, Any]:
    where = """"pool" = '$pool'"""
    ip_links = [_to_ip("${__field.labels.sending_ip}")]
    panels = [
        listings_table(
            "Which of $pool's IPs are listed on which zone, since when, and where do we delist?",
            "Every (IP, zone) of the pool listed now.",
            where,
            (0, 0, 24, 7),
        ),
        rate_table(
            "How do $pool's IPs compare in volume, complaint and hard-bounce rate?",
            "Every sending IP of the pool, highest complaint rate first.",
            where,
            (0, 7, 24, 8),
            limit=None,
        ),
        rate_panel(
            "complaint", "each IP in $pool", where, "sending_ip", (0, 15, 12, 8), links=ip_links
        ),
        rate_panel(
            "bounce", "each IP in $pool", where, "sending_ip", (12, 15, 12, 8), links=ip_links
        ),
        volume_panel(
            "How much mail does each of $pool's IPs send?",
            where,
            "sending_ip",
            (0, 23, 12, 8),
            ip_links,
        ),
        panel(
            "state-timeline",
            "Do $pool's IPs have a forward-confirmed PTR and SPF authorization?",
            "Hygiene checks per IP of the pool (ptr: forward-confirmed reverse DNS; "
            "spf-authorizes: the pool's domains' SPF allows it). Purple: unknown (not checked).",
            [
                target(
                    f"""SELECT last("state") FROM "hygiene" WHERE {where}
                AND "check" =~ /^(ptr|spf-authorizes)$/ AND $timeFilter
                GROUP BY time($__interval), "target", "check" fill(previous)""",
                    "$tag_target $tag_check",
                )
            ],  # fmt: skip
            (12, 23, 12, 8),
            unit="none",
            steps=STATE_STEPS,
            mappings=STATE_MAPPINGS,
            interval="1h",
        ),
    ]
    return dashboard(
        POOL,
        "repmon / Pool",
        "One pool: its listings, its IPs' volume and rates side by side, PTR and SPF. Click an "
        "IP to open it; the header links to the pool's customer.",
        panels,
        [
            query_variable(
                "pool",
                "Pool",
                """SHOW TAG VALUES FROM "hygiene" WITH KEY = "pool" WHERE "pool" != 'none'""",
            ),
            query_variable(
                "customer",
                "Customer",
                """SHOW TAG VALUES FROM "hygiene" WITH KEY = "customer" WHERE "pool" = '$pool'""",
                hidden=True,
            ),
            LISTING_WINDOW,
        ],
        links=[dashboard_link("Customer ${customer}", CUSTOMER, customer="${customer}")],
    )


def sending_ip() -> dict[str, Any]:
    where = """"sending_ip" = '$ip'"""
    feedback_where = f"""{where} AND $timeFilter"""
    ip_levels = severity_levels(""""target" = '$ip' AND $timeFilter""", unknown=True)
    panels = [
        panel(
            "state-timeline",
            "On which blocklists is $ip listed, how severe, and since when?",
            "Listing state per zone and hour, coloured by the listing's severity (critical "
            "red, high orange, medium yellow, low blue, info grey; green: not listed; purple: "
            "unknown, every answer in the hour was a timeout or refusal). Blank: no sweep.",
            [
                target(
                    f"""SELECT max("level") FROM {ip_levels}
                GROUP BY time($__interval), "zone" fill(null)""",
                    "$tag_zone",
                )
            ],  # fmt: skip
            (0, 0, 24, 7),
            unit="none",
            mappings=SEVERITY_LEVEL_MAPPINGS,
            interval="1h",
        ),
        listings_table(
            "Where is $ip listed right now, since when, and where do we delist?",
            "Every zone listing this IP now.",
            """"target" = '$ip'""",
            (0, 7, 24, 4),
        ),
        rate_panel("complaint", "$ip", where, "", (0, 11, 12, 8)),
        rate_panel("bounce", "$ip", where, "", (12, 11, 12, 8)),
        panel(
            "timeseries",
            "How much mail does $ip send?",
            "Messages sent per hour (the denominator of both rates above).",
            [
                target(
                    f"""SELECT sum("sent") FROM "feedback" WHERE {feedback_where}
                GROUP BY time($__interval) fill(none)""",
                    "sent",
                )
            ],
            (0, 19, 12, 8),
            interval="1h",
            bars=True,
        ),
        panel(
            "timeseries",
            "Why do $ip's messages bounce?",
            "Bounced recipients per bounce category, per hour.",
            [
                target(
                    f"""SELECT sum("bounce") FROM "feedback" WHERE {feedback_where}
                GROUP BY time($__interval), "category" fill(none)""",
                    "$tag_category",
                )
            ],
            (12, 19, 12, 8),
            interval="1h",
            stack=True,
            bars=True,
        ),
        panel(
            "bargauge",
            "Which mailbox providers bounce or complain about $ip?",
            "Bounces and complaints per receiving domain over the time range "
            "(domains outside the provider list are counted as 'other'). Counts, not severities.",
            [
                target(
                    f"""SELECT sum("bounce") AS "bounces", sum("complaint") AS "complaints"
                FROM "feedback" WHERE {feedback_where} GROUP BY "receiving_domain" """,
                    "$tag_receiving_domain $col",
                )
            ],  # fmt: skip
            (0, 27, 12, 9),
            color=NEUTRAL_COLOR,
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
            (12, 27, 12, 9),
            interval="1h",
            stack=True,
            bars=True,
            overrides=ALIGNMENT_OVERRIDES,
        ),
        panel(
            "state-timeline",
            "Does $ip have a valid PTR and is it authorized by SPF?",
            "Hygiene checks of this IP (ptr: forward-confirmed reverse DNS; spf-authorizes: "
            "the pool's domains' SPF allows it). Purple: unknown (not checked).",
            [
                target(
                    """SELECT last("state") FROM "hygiene" WHERE "target" = '$ip'
                AND "check" =~ /^(ptr|spf-authorizes)$/ AND $timeFilter
                GROUP BY time($__interval), "check" fill(previous)""",
                    "$tag_check",
                )
            ],
            (0, 36, 24, 5),
            unit="none",
            steps=STATE_STEPS,
            mappings=STATE_MAPPINGS,
            interval="1h",
        ),
        _days(
            snds_verdict_panel(
                "What does Outlook.com's filter (SNDS) say about $ip each day?",
                where,
                (0, 41, 24, 4),
                per_ip=False,
            )
        ),
        _days(
            snds_complaint_panel(
                "Is $ip's complaint rate at Outlook.com (SNDS) and ours below 0.1 % (medium) "
                "and 0.3 % (critical)?",
                where,
                (0, 45, 12, 8),
                per_ip=False,
            )
        ),
        _days(
            snds_traps_panel(
                "Does $ip hit Outlook.com's spam traps (SNDS)?",
                where,
                (12, 45, 12, 8),
                per_ip=False,
            )
        ),
    ]
    return dashboard(
        SENDING_IP,
        "repmon / Sending IP",
        "Everything about one sending IP: listings with delist links, complaint and bounce "
        "rates, volume, feedback, DMARC volume, PTR and SPF, and what Outlook.com says of it "
        "(SNDS: filter verdict, complaint rate beside ours, trap hits). The header links to its "
        "pool and customer.",
        panels,
        [
            query_variable(
                "ip",
                "Sending IP",
                """SHOW TAG VALUES FROM "hygiene" WITH KEY = "target" WHERE "target_type" = 'ip'""",
            ),
            query_variable(
                "pool",
                "Pool",
                """SHOW TAG VALUES FROM "hygiene" WITH KEY = "pool" WHERE "target" = '$ip'""",
                hidden=True,
            ),
            query_variable(
                "customer",
                "Customer",
                """SHOW TAG VALUES FROM "hygiene" WITH KEY = "customer" WHERE "target" = '$ip'""",
                hidden=True,
            ),
            LISTING_WINDOW,
        ],
        links=[
            dashboard_link("Pool ${pool}", POOL, pool="${pool}"),
            dashboard_link("Customer ${customer}", CUSTOMER, customer="${customer}"),
        ],
    )


def customer() -> dict[str, Any]:
    where = """"customer" = '$customer'"""
    pool_links = [_to_pool("${__field.labels.pool}")]
    total = target(
        f"""SELECT 100.0 * sum("complaint") / sum("sent") FROM "feedback" WHERE {where}
        AND $timeFilter GROUP BY time($__interval) fill(none)""",
        "$customer (all pools)",
        ref="B",
    )
    bounce_total = target(
        f"""SELECT 100.0 * sum("hard_bounce") / sum("sent") FROM "feedback" WHERE {where}
        AND $timeFilter GROUP BY time($__interval) fill(none)""",
        "$customer (all pools)",
        ref="B",
    )
    panels = [
        listings_table(
            "Which of $customer's IPs are listed on which zone, since when, and where do we "
            "delist?",
            "Every (IP, zone) of the customer listed now.",
            where,
            (0, 0, 24, 7),
        ),
        listings_table(
            "Which of $customer's domains are listed, since when?",
            "Every (domain, zone) of the customer listed now.",
            where,
            (0, 7, 24, 4),
            kind="domain",
        ),
        rate_table(
            "How do $customer's pools compare in volume, complaint and hard-bounce rate?",
            "Every pool of the customer, highest complaint rate first.",
            where,
            (0, 11, 24, 6),
            key="pool",
            limit=None,
        ),
        rate_panel(
            "complaint",
            "$customer and its pools",
            where,
            "pool",
            (0, 17, 12, 8),
            links=pool_links,
            extra=[total],
        ),
        rate_panel(
            "bounce",
            "$customer and its pools",
            where,
            "pool",
            (12, 17, 12, 8),
            links=pool_links,
            extra=[bounce_total],
        ),
        panel(
            "state-timeline",
            "Are $customer's domains' SPF, DMARC, DKIM, MX, MTA-STS, TLS-RPT and DNSSEC in order?",
            "Hygiene checks per (domain, check): ok, problem or unknown (purple: not checked).",
            [
                target(
                    f"""SELECT last("state") FROM "hygiene" WHERE {where}
                AND "target_type" = 'domain' AND "check" !~ /^(gmail-|snds)/ AND $timeFilter
                GROUP BY time($__interval), "target", "check" fill(previous)""",
                    "$tag_target $tag_check",
                )
            ],  # fmt: skip
            (0, 25, 24, 9),
            unit="none",
            steps=STATE_STEPS,
            mappings=STATE_MAPPINGS,
            interval="1h",
            links=[_to_domain("${__field.labels.target}")],
        ),
        panel(
            "timeseries",
            "How much of $customer's mail passes DMARC at the receivers?",
            "Messages in DMARC aggregate reports from the customer's IPs, by alignment.",
            [
                target(
                    f"""SELECT sum("messages") FROM "dmarc" WHERE {where} AND $timeFilter
                GROUP BY time($__interval), "alignment" fill(none)""",
                    "$tag_alignment",
                )
            ],
            (0, 34, 24, 7),
            interval="1h",
            stack=True,
            bars=True,
            overrides=ALIGNMENT_OVERRIDES,
        ),
    ]
    return dashboard(
        CUSTOMER,
        "repmon / Customer",
        "One customer: listings of its IPs and domains, its pools' volume and rates (the "
        "customer rate is what [rules] per_customer judges), domain hygiene, DMARC.",
        panels,
        [_customer_var(multi=False), LISTING_WINDOW],
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
        steps=STATE_STEPS,
        mappings=STATE_MAPPINGS,
        interval="1h",
    )


def domains() -> dict[str, Any]:
    w = """"header_from" =~ /^$domain$/ AND $timeFilter"""
    panels = [
        _hygiene_panel(
            "spf",
            "Does each domain publish a valid SPF record?",
            "SPF check per sending domain: ok, problem (missing, broken, too many "
            "lookups) or unknown (DNS failure, purple).",
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
            steps=STATE_STEPS,
            mappings=STATE_MAPPINGS,
            interval="1h",
        ),
        panel(
            "state-timeline",
            "Does every sending IP have a forward-confirmed PTR?",
            "PTR check per sending IP of the selected customers (reverse DNS name whose A/AAAA "
            "points back).",
            [
                target(
                    """SELECT last("state") FROM "hygiene" WHERE "check" = 'ptr'
                AND "customer" =~ /^$customer$/ AND $timeFilter
                GROUP BY time($__interval), "target" fill(previous)""",
                    "$tag_target",
                )
            ],
            (0, 23, 24, 8),
            unit="none",
            steps=STATE_STEPS,
            mappings=STATE_MAPPINGS,
            interval="1h",
            links=[_to_ip("${__field.labels.target}")],
        ),
        panel(
            "timeseries",
            "What share of each domain's mail fails DMARC at the receivers?",
            "Messages failing DMARC alignment (neither DKIM nor SPF passed aligned) / all "
            "messages in the DMARC aggregate reports, per header-from domain and report period, "
            "in percent: the receivers' own count, forwarders and spoofers included (the "
            "customer and IP dashboards show pass and fail volume of our own IPs).",
            [
                target(
                    f"""SELECT 100.0 * sum("fail") / sum("all") FROM
                    (SELECT "messages" AS "all", "messages" * 0 AS "fail" FROM "dmarc" WHERE {w}),
                    (SELECT "messages" * 0 AS "all", "messages" AS "fail" FROM "dmarc"
                    WHERE "alignment" = 'fail' AND {w})
                    GROUP BY time($__interval), "header_from" fill(none)""",
                    "$tag_header_from",
                )
            ],
            (0, 31, 24, 8),
            unit="percent",
            interval="1h",
            bars=True,
        ),
        _days(
            gmail_spam_panel(
                "Is each domain's Gmail spam rate below 0.1 % (medium) and 0.3 % (high)?",
                """"domain" =~ /^$domain$/""",
                (0, 39, 12, 8),
            )
        ),
        _days(
            gmail_reputation_panel(
                "What reputation does Gmail give each domain?",
                """"domain" =~ /^$domain$/""",
                (12, 39, 12, 8),
            )
        ),
        _days(
            gmail_auth_panel(
                "Does each domain's mail pass SPF, DKIM and DMARC at Gmail?",
                """"domain" =~ /^$domain$/""",
                (0, 47, 24, 8),
            )
        ),
    ]
    domain = query_variable(
        "domain",
        "Domain",
        """SHOW TAG VALUES FROM "hygiene" WITH KEY = "target"
        WHERE "target_type" = 'domain' AND "customer" =~ /^$customer$/""",
        multi=True,
    )
    return dashboard(
        DOMAINS,
        "repmon / Domains",
        "SPF, DMARC, DKIM and PTR state over time, DMARC pass rates per domain, and what Gmail "
        "says of each domain (Postmaster Tools: spam rate, reputation, authentication).",
        panels,
        [_customer_var(), domain],
        time_from="now-7d",
    )


def feedback() -> dict[str, Any]:
    where = f"""{FILTER} AND $timeFilter"""
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
        rate_table(
            "Which sending IPs have the highest complaint rates?",
            "The 10 sending IPs with the highest complaint rate.",
            FILTER,
            (0, 16, 24, 8),
        ),
        rate_table(
            "Which sending IPs have the highest hard-bounce rates?",
            "The 10 sending IPs with the highest hard-bounce rate.",
            FILTER,
            (0, 24, 24, 8),
            by="hard_bounce_rate",
        ),
    ]
    return dashboard(
        FEEDBACK,
        "repmon / Feedback",
        "Bounces by category and mailbox provider, complaints by feedback type, the IPs with "
        "the highest complaint and hard-bounce rates (with volume, pool, customer).",
        panels,
        [_customer_var(), _pool_var()],
    )


# --- the mailbox providers' verdicts: Microsoft SNDS, Google Postmaster Tools ---------------
#: SNDS filter result (``filter_level``) and Gmail reputation (``reputation_level``) back to
#: their names, coloured by the severity of the case repmon opens on them (green: none)
FILTER_MAPPINGS = level_mappings(
    FILTER_LEVELS,
    {"GREEN": OK_COLOR, "YELLOW": SEVERITY_COLORS["medium"], "RED": SEVERITY_COLORS["high"]},
)
REPUTATION_MAPPINGS = level_mappings(
    REPUTATION_LEVELS,
    {
        "HIGH": OK_COLOR,
        "MEDIUM": FAIR_COLOR,
        "LOW": SEVERITY_COLORS["medium"],
        "BAD": SEVERITY_COLORS["high"],
    },
)
PROVIDER_WINDOW = constant(
    "provider_window",
    "7h",
    "How far back 'right now' looks for the last SNDS / Postmaster Tools fetch: a bit more "
    "than [schedule] snds_fetch and postmaster_fetch (6h by default). Raise it with them.",
)
#: the providers publish one figure per day: their panels group by day, not $__interval
DAY = "time(1d)"


def _days(p: dict[str, Any], days: int = 14) -> dict[str, Any]:
    """A provider panel on a dashboard of hours: its own time range of ``days`` (Grafana's
    relative time override), since the providers publish one figure a day."""
    p["timeFrom"] = f"{days}d"
    return p


def snds_verdict_panel(
    title: str, where: str, grid: tuple[int, int, int, int], per_ip: bool = True
) -> dict[str, Any]:
    """SNDS filter result per day (per IP), coloured by the case it opens."""
    return panel(
        "state-timeline",
        title,
        "Outlook.com's filter verdict per day, from Microsoft SNDS: GREEN (under 10 % of the "
        "IP's mail judged spam), YELLOW (10-90 %: a medium case), RED (over 90 %: a high case). "
        "Blank: no SNDS row that day (SNDS lists only IPs that sent 100+ messages). SNDS "
        "publishes a day late.",
        [
            target(
                f"""SELECT max("filter_level") FROM "snds" WHERE {where} AND $timeFilter
                GROUP BY {DAY}{', "sending_ip"' if per_ip else ""} fill(null)""",
                "$tag_sending_ip" if per_ip else "filter result",
            )
        ],
        grid,
        unit="none",
        mappings=FILTER_MAPPINGS,
        links=[_to_ip("${__field.labels.sending_ip}")] if per_ip else None,
    )


def snds_traps_panel(
    title: str, where: str, grid: tuple[int, int, int, int], per_ip: bool = True
) -> dict[str, Any]:
    return panel(
        "timeseries",
        title,
        "Spam-trap hits per day that Outlook.com reports in SNDS. Microsoft asks for an "
        "investigation of any trap hit (the trap addresses never signed up): every hit opens a "
        "high case.",
        [
            target(
                f"""SELECT sum("trap_hits") FROM "snds" WHERE {where} AND $timeFilter
                GROUP BY {DAY}{', "sending_ip"' if per_ip else ""} fill(none)""",
                "$tag_sending_ip" if per_ip else "trap hits",
            )
        ],
        grid,
        bars=True,
        stack=per_ip,
        links=[_to_ip("${__field.labels.sending_ip}")] if per_ip else None,
    )


def snds_complaint_panel(
    title: str, where: str, grid: tuple[int, int, int, int], per_ip: bool = True
) -> dict[str, Any]:
    """Outlook.com's complaint rate (SNDS) next to ours, per day, with our rule's thresholds."""
    group = ', "sending_ip"' if per_ip else ""
    return panel(
        "timeseries",
        title,
        "Per day, in percent: our complaint rate (feedback-loop complaints from every provider "
        "/ messages sent) and the one Outlook.com publishes in SNDS (its users' junk reports / "
        "its recipients). SNDS's '< 0.1 %' is no figure and is not drawn. Dashed lines: the "
        "severity of the case [rules.complaints] opens on our rate (medium 0.1 %, critical "
        "0.3 %). Lines take the colour of the range they are in.",
        [
            target(
                f"""SELECT 100.0 * sum("complaint") / sum("sent") FROM "feedback" WHERE {where}
                AND $timeFilter GROUP BY {DAY}{group} fill(none)""",
                "$tag_sending_ip ours" if per_ip else "ours",
            ),
            target(
                f"""SELECT 100 * max("complaint_rate") FROM "snds" WHERE {where}
                AND $timeFilter GROUP BY {DAY}{group} fill(none)""",
                "$tag_sending_ip SNDS" if per_ip else "SNDS (Outlook.com)",
                ref="B",
            ),
        ],
        grid,
        unit="percent",
        steps=COMPLAINT_STEPS,
        soft_max=max(COMPLAINT_THRESHOLDS.values()) * 1.1,
        by_threshold=True,
        links=[_to_ip("${__field.labels.sending_ip}")] if per_ip else None,
    )


SNDS_COLUMNS = [
    "sending_ip", "pool", "customer", "filter", "traps", "snds_rate", "snds_under", "sent",
    "complaints", "complaint_rate", "hard_bounces", "hard_bounce_rate",
]  # fmt: skip


def snds_table_query(where: str) -> str:
    """Per IP over the time range: the worst SNDS filter result, trap hits, the highest SNDS
    complaint rate published as a figure and the highest '< x %' bound, with pool and customer
    (merged in Grafana with our own rates, :func:`rate_table_query`, by IP, pool, customer)."""
    inner = f"""SELECT max("filter_level") AS "filter", sum("trap_hits") AS "traps",
        100 * max("complaint_rate") AS "snds_rate", 100 * max("complaint_rate_under")
        AS "snds_under" FROM "snds" WHERE {where} AND $timeFilter
        GROUP BY "sending_ip", "pool", "customer" """
    return f"""SELECT "filter", "traps", "snds_rate", "snds_under", "sending_ip", "pool",
        "customer" FROM ({inner})"""


def snds_table(title: str, where: str, grid: tuple[int, int, int, int]) -> dict[str, Any]:
    """Our volume and rates per IP (query A, as every feedback table) merged with what SNDS
    says of the IP (query B) on IP, pool and customer."""
    under = column("snds_under", "SNDS: under", unit="percent", decimals=2)
    return panel(
        "table",
        title,
        "Per sending IP over the dashboard's time range: our own volume, complaints and rates "
        "(all providers) beside Outlook.com's worst filter verdict, its spam-trap hits and the "
        "highest complaint rate it published (SNDS; 'under': it published only '< x %'). Rows "
        f"that sent fewer than {MIN_VOLUME:,} messages have no rates of ours; IPs without an "
        "SNDS row have no verdict. Rates are coloured by the severity of the case "
        "[rules.complaints] / [rules.bounces] opens at that rate.",
        [
            target(rate_table_query(where, "sending_ip", limit=None), table=True),
            target(snds_table_query(where), ref="B", table=True),
        ],
        grid,
        overrides=[
            column("sending_ip", "IP", links=[_to_ip()]),
            column("pool", "pool", links=[_to_pool()]),
            column("customer", "customer", links=[_to_customer()]),
            column("filter", "SNDS filter (worst)", mappings=FILTER_MAPPINGS, background=True),
            column("traps", "trap hits", unit="short"),
            _rate_column("snds_rate", "SNDS complaint rate", COMPLAINT_STEPS),
            under,
            column("sent", "sent", unit="short"),
            column("complaints", "complaints", unit="short"),
            _rate_column("complaint_rate", "our complaint rate", COMPLAINT_STEPS),
            column("hard_bounces", "hard bounces", unit="short"),
            _rate_column("hard_bounce_rate", "our hard-bounce rate", BOUNCE_STEPS),
        ],
        transformations=[{"id": "merge", "options": {}}, organize(SNDS_COLUMNS)],
        sort_by=("SNDS filter (worst)", True),
    )


def gmail_spam_panel(title: str, where: str, grid: tuple[int, int, int, int]) -> dict[str, Any]:
    medium, high = GMAIL_SPAM_THRESHOLDS["medium"], GMAIL_SPAM_THRESHOLDS["high"]
    return panel(
        "timeseries",
        title,
        "Gmail's user-reported spam rate per domain and day (Postmaster Tools), in percent. "
        f"Dashed lines: the severity of the gmail-spam-rate case: medium from {medium} %, high "
        f"from {high} % (Gmail's bulk-sender guidance: stay under {medium} %, never reach "
        f"{high} %). Gmail gives no rate on days with too little DKIM-signed mail; it publishes "
        "a day or two late.",
        [
            target(
                f"""SELECT 100 * max("spam_rate") FROM "postmaster" WHERE {where}
                AND $timeFilter GROUP BY {DAY}, "domain" fill(none)""",
                "$tag_domain",
            )
        ],
        grid,
        unit="percent",
        steps=GMAIL_SPAM_STEPS,
        soft_max=high * 1.1,
        by_threshold=True,
        links=[_to_domain("${__field.labels.domain}")],
    )


def gmail_reputation_panel(
    title: str, where: str, grid: tuple[int, int, int, int]
) -> dict[str, Any]:
    return panel(
        "state-timeline",
        title,
        "The domain reputation Gmail gives per day (Postmaster Tools): HIGH and MEDIUM green, "
        "LOW yellow (a medium case: mail often goes to spam), BAD orange (a high case: almost "
        "always refused or filtered). Blank: no statistics that day.",
        [
            target(
                f"""SELECT max("reputation_level") FROM "postmaster" WHERE {where}
                AND $timeFilter GROUP BY {DAY}, "domain" fill(null)""",
                "$tag_domain",
            )
        ],
        grid,
        unit="none",
        mappings=REPUTATION_MAPPINGS,
        links=[_to_domain("${__field.labels.domain}")],
    )


def gmail_auth_panel(title: str, where: str, grid: tuple[int, int, int, int]) -> dict[str, Any]:
    return panel(
        "timeseries",
        title,
        "Share of each domain's mail that passed SPF, DKIM and DMARC at Gmail, per day "
        "(Postmaster Tools; spoofed mail is left out by Gmail), in percent. Below the dashed "
        f"line ({AUTH_MIN_PERCENT:g} %, [postmaster] auth_min_ratio) a pass ratio opens a medium "
        "gmail-auth case: a sending path that is not signed or not authorized.",
        [
            target(
                f"""SELECT 100 * min("spf") AS "SPF", 100 * min("dkim") AS "DKIM",
                100 * min("dmarc") AS "DMARC" FROM "postmaster" WHERE {where}
                AND $timeFilter GROUP BY {DAY}, "domain" fill(none)""",
                "$tag_domain $col",
            )
        ],
        grid,
        unit="percent",
        steps=AUTH_STEPS,
        by_threshold=True,
    )


def providers() -> dict[str, Any]:
    ip_where = FILTER
    domain_where = """"domain" =~ /^$domain$/"""
    blocked_now = f"""SELECT last("state") AS "state" FROM "hygiene"
        WHERE "check" = 'snds-blocked' AND {FILTER} AND time > now() - $provider_window
        GROUP BY "target", "target_type", "pool", "customer" """
    panels = [
        panel(
            "stat",
            "How many of our IPs does Outlook.com block right now?",
            "Inventory IPs inside a range SNDS lists as blocked (Outlook.com refuses their "
            "mail: a high case each), by the last fetch of the IP status export.",
            [
                target(
                    f"""SELECT count("state") AS "blocked IPs" FROM ({blocked_now})
                    WHERE "state" = 2 AND "target_type" = 'ip'""",
                    "blocked IPs",
                )
            ],
            (0, 0, 6, 5),
            color=NEUTRAL_COLOR,
        ),
        panel(
            "stat",
            "How many ranges does SNDS block, and how many are not ours?",
            "From the last read of the SNDS IP status export. A blocked range holding none of "
            "the inventory's IPs is registered in the SNDS account but unknown to repmon: it "
            "opens a case per CIDR block (subject kind 'range').",
            [
                target(
                    """SELECT last("ranges") AS "blocked ranges",
                    last("unwatched_ranges") AS "not in the inventory" FROM "snds_blocked"
                    WHERE time > now() - $provider_window""",
                    "$col",
                )
            ],
            (6, 0, 6, 5),
            color=NEUTRAL_COLOR,
        ),
        panel(
            "timeseries",
            "Do the SNDS and Postmaster Tools fetches get answers?",
            "Share of each fetch's results that were unknown: a refused key (renew it: repmon "
            "status says how), an outage, a late day. Unknown never opens or closes a case. "
            "Dashed lines (purple, the colour of 'unknown'): 5 % and 50 %.",
            [
                target(
                    """SELECT 100.0 * sum("unknown") / sum("queries") FROM "sweep"
                    WHERE "kind" =~ /^(snds|postmaster)$/ AND $timeFilter
                    GROUP BY time($__interval), "kind" fill(none)""",
                    "$tag_kind",
                )
            ],
            (12, 0, 12, 5),
            unit="percent",
            steps=[("transparent", None), (UNKNOWN_COLOR, 5), (UNKNOWN_COLOR, 50)],
            interval="6h",
        ),
        snds_verdict_panel(
            "What does Outlook.com's filter (SNDS) say about each of our IPs?",
            ip_where,
            (0, 5, 24, 8),
        ),
        snds_table(
            "Which IPs does Outlook.com judge worst, and how do its complaint figures compare "
            "with ours?",
            ip_where,
            (0, 13, 24, 8),
        ),
        snds_complaint_panel(
            "Is each IP's complaint rate at Outlook.com (SNDS) and ours below 0.1 % (medium) and "
            "0.3 % (critical)?",
            ip_where,
            (0, 21, 12, 8),
        ),
        snds_traps_panel(
            "Which of our IPs hit Outlook.com's spam traps?", ip_where, (12, 21, 12, 8)
        ),
        panel(
            "table",
            "Which of our IPs does Outlook.com block (SNDS)?",
            "IPs inside a blocked range of the last SNDS IP status export (a high case each); "
            "a range holding none of ours shows as its CIDR blocks, without pool or customer.",
            [
                target(
                    f"""SELECT "target", "pool", "customer", "state" FROM ({blocked_now})
                    WHERE "state" = 2""",
                    table=True,
                )
            ],
            (0, 29, 24, 5),
            overrides=[
                column("target", "IP or range", links=[_to_ip()]),
                column("pool", "pool", links=[_to_pool()]),
                column("customer", "customer", links=[_to_customer()]),
                column("state", "SNDS", mappings=STATE_MAPPINGS, background=True),
            ],
            transformations=[organize(["target", "pool", "customer", "state"])],
        ),
        gmail_spam_panel(
            "Is each domain's Gmail spam rate below 0.1 % (medium) and 0.3 % (high)?",
            domain_where,
            (0, 34, 12, 8),
        ),
        gmail_reputation_panel(
            "What reputation does Gmail give each domain?", domain_where, (12, 34, 12, 8)
        ),
        panel(
            "timeseries",
            "How many of each domain's sending IPs does Gmail rate LOW or BAD?",
            "Sending IPs per Gmail IP-reputation category and day (Postmaster Tools), counted "
            "per domain (Gmail's sample IPs are on the gmail-reputation case, never in the "
            "series). Any IP in LOW opens a medium case, in BAD a high one.",
            [
                target(
                    f"""SELECT sum("ips_bad") AS "BAD (high)", sum("ips_low") AS "LOW (medium)",
                    sum("ips_medium") AS "MEDIUM", sum("ips_high") AS "HIGH" FROM "postmaster"
                    WHERE {domain_where} AND $timeFilter
                    GROUP BY {DAY}, "domain" fill(none)""",
                    "$tag_domain $col",
                )
            ],
            (0, 42, 12, 8),
            bars=True,
            stack=True,
            overrides=severity_overrides(r"/\({sev}\)$/")
            + [
                {
                    "matcher": {"id": "byRegexp", "options": f"/ {name}$/"},
                    "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": c}}],
                }
                for name, c in (("MEDIUM", FAIR_COLOR), ("HIGH", OK_COLOR))
            ],
        ),
        gmail_auth_panel(
            "Does each domain's mail pass SPF, DKIM and DMARC at Gmail?",
            domain_where,
            (12, 42, 12, 8),
        ),
        panel(
            "timeseries",
            "How much of each domain's mail reaches Gmail over TLS?",
            "Share of the domain's mail to Gmail that came over TLS, per day (Postmaster Tools "
            "inbound encryption), in percent. Gmail requires TLS of bulk senders.",
            [
                target(
                    f"""SELECT 100 * min("inbound_tls") FROM "postmaster"
                    WHERE {domain_where} AND $timeFilter GROUP BY {DAY}, "domain" fill(none)""",
                    "$tag_domain",
                )
            ],
            (0, 50, 12, 7),
            unit="percent",
        ),
        panel(
            "timeseries",
            "How much of each domain's mail does Gmail refuse or defer?",
            "Share of the domain's mail that Gmail refused (permanent) or deferred (temporary) "
            "per day, summed over the error types Postmaster Tools lists (rate limits, "
            "suspected spam, bad reputation, DMARC policy ...), in percent.",
            [
                target(
                    f"""SELECT 100 * max("permanent_errors") AS "permanent",
                    100 * max("temporary_errors") AS "temporary" FROM "postmaster"
                    WHERE {domain_where} AND $timeFilter GROUP BY {DAY}, "domain" fill(none)""",
                    "$tag_domain $col",
                )
            ],
            (12, 50, 12, 7),
            unit="percent",
        ),
        panel(
            "table",
            "Which domains need work on Gmail's bulk-sender requirements?",
            "The last Postmaster Tools compliance status per domain: requirements Gmail checked "
            "and those at NEEDS_WORK (a medium gmail-compliance case; the case lists which).",
            [
                target(
                    f"""SELECT "domain", "pool", "customer", "needs_work", "requirements" FROM
                    (SELECT last("needs_work") AS "needs_work",
                    last("requirements") AS "requirements" FROM "postmaster_compliance"
                    WHERE {domain_where} AND $timeFilter GROUP BY "domain", "pool", "customer")""",
                    table=True,
                )
            ],
            (0, 57, 24, 5),
            overrides=[
                column("domain", "domain", links=[_to_domain()]),
                column("pool", "pool", links=[_to_pool()]),
                column("customer", "customer", links=[_to_customer()]),
                column("needs_work", "needs work", unit="short"),
                column("requirements", "requirements checked", unit="short"),
            ],
            transformations=[
                organize(["domain", "pool", "customer", "needs_work", "requirements"])
            ],
            sort_by=("needs work", True),
        ),
    ]
    domain = query_variable(
        "domain",
        "Domain",
        """SHOW TAG VALUES FROM "postmaster" WITH KEY = "domain"
        WHERE "customer" =~ /^$customer$/""",
        multi=True,
    )
    return dashboard(
        PROVIDERS,
        "repmon / Mailbox providers",
        "What Outlook.com (Microsoft SNDS) and Gmail (Postmaster Tools) say about our IPs and "
        "domains, beside our own rates: filter verdicts, trap hits, blocks and complaint rates "
        "per IP; spam rate, reputation, authentication and compliance per domain.",
        panels,
        [_customer_var(), _pool_var(), domain, PROVIDER_WINDOW],
        time_from="now-30d",
    )


DASHBOARDS = {"overview": overview, "pool": pool, "sending-ip": sending_ip,
              "customer": customer, "domains": domains, "feedback": feedback,
              "providers": providers}  # fmt: skip
DASHBOARDS["abuse"] = abuse_board.board  # the abuse desk's queue (abuse_board.py)


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, build in DASHBOARDS.items():
        board = build()
        (OUT / f"{name}.json").write_text(render_json(board))
        print(f"wrote dashboards/{name}.json: {len(board['panels'])} panels")


if __name__ == "__main__":
    main()
