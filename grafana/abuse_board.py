"""The Abuse dashboard (``repmon-abuse``): the abuse desk's queue, from the ``abuse``
measurement (docs/timeseries.md, "abuse"). Built by ``build.py`` like the others; its own
module so that it changes apart from theirs. Also :func:`sample_lines`, a synthetic two days
of abuse reports written with the real point builders, which the dashboard tests load next to
``sample_run.py``'s run.

Panels: reports per category over time, the customers with the most reports (table, linked to
the Customer dashboard) and their reports over time, who reports us, addresses named that are
not ours per reporter, the review backlog now and over time, the oldest report waiting, the
time to first action (cases and the review queue), and what analysts reclassify.
"""

from __future__ import annotations

import datetime as dt
import random
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
for _path in (str(HERE), str(HERE.parent)):
    if _path not in sys.path:
        sys.path.append(_path)

from panels import (  # noqa: E402
    NEUTRAL_COLOR,
    column,
    dashboard,
    dashboard_url,
    data_link,
    organize,
    panel,
    query_variable,
    target,
)

from collectors.abuse.model import CATEGORIES  # noqa: E402
from monitor.timeseries.abuse import (  # noqa: E402
    action_points,
    backlog_points,
    count_points,
    reclassified_points,
)

ABUSE = "repmon-abuse"
CUSTOMER = "repmon-customer"
#: the points of reports (each report once: ``customer = 'all'``) and per customer of ours
REPORTS = """"kind" = 'reports'"""
ALL = f"""{REPORTS} AND "customer" = 'all'"""
CUSTOMERS = f"""{REPORTS} AND "customer" !~ /^(all|none)$/ AND "customer" =~ /^$customer$/"""


def _to_customer(value: str = "${__value.raw}") -> dict[str, Any]:
    return data_link(f"Customer {value}", dashboard_url(CUSTOMER, customer=value))


def board() -> dict[str, Any]:
    panels = [
        panel(
            "timeseries",
            "How many abuse reports arrive, per category?",
            "Abuse reports received per hour, each report once, by its category (an analyst's "
            "reclassification moves it to its new category).",
            [
                target(
                    f"""SELECT sum("reports") FROM "abuse" WHERE {ALL} AND $timeFilter
                GROUP BY time($__interval), "category" fill(none)""",
                    "$tag_category",
                )
            ],
            (0, 0, 16, 8),
            interval="1h",
            stack=True,
            bars=True,
        ),
        panel(
            "stat",
            "How many reports wait for review now?",
            "Reports the classifier was unsure of ([abuse] review_threshold), about our "
            "addresses or naming nothing, that no analyst has classified yet: "
            "repmon reports list --review.",
            [
                target(
                    """SELECT sum("waiting") FROM (SELECT last("waiting") AS "waiting"
                FROM "abuse" WHERE "kind" = 'backlog' AND time > now() - 1h
                GROUP BY "category")""",
                    "waiting",
                )
            ],
            (16, 0, 8, 4),
            color=NEUTRAL_COLOR,
        ),
        panel(
            "stat",
            "How long has the oldest report waited for review?",
            "Age of the oldest report in the review queue now.",
            [
                target(
                    """SELECT max("oldest_s") FROM (SELECT last("oldest_s") AS "oldest_s"
                FROM "abuse" WHERE "kind" = 'backlog' AND time > now() - 1h
                GROUP BY "category")""",
                    "oldest",
                )
            ],
            (16, 4, 8, 4),
            unit="s",
            color=NEUTRAL_COLOR,
        ),
        panel(
            "table",
            "Which customers draw the most abuse reports?",
            "The 10 customers named by the most reports in the time range, with the addresses "
            "of theirs those reports named. A click opens the customer.",
            [
                target(
                    f"""SELECT top("reports", 10) AS "reports", "addresses", "customer" FROM
                (SELECT sum("reports") AS "reports", sum("addresses") AS "addresses"
                FROM "abuse" WHERE {CUSTOMERS} AND $timeFilter GROUP BY "customer")""",
                    table=True,
                )
            ],
            (0, 8, 10, 8),
            overrides=[column("customer", "customer", links=[_to_customer()])],
            transformations=[organize(["customer", "reports", "addresses"])],
            sort_by=("reports", True),
        ),
        panel(
            "timeseries",
            "Which customers are reported, over time?",
            "Reports per hour naming each customer's addresses or sites (a report about "
            "several customers counts for each).",
            [
                target(
                    f"""SELECT sum("reports") FROM "abuse" WHERE {CUSTOMERS} AND $timeFilter
                GROUP BY time($__interval), "customer" fill(none)""",
                    "$tag_customer",
                )
            ],
            (10, 8, 14, 8),
            interval="1h",
            stack=True,
            links=[_to_customer("${__field.labels.customer}")],
        ),
        panel(
            "timeseries",
            "How many reports wait for review, per category?",
            "The review queue over time, by the category the classifier guessed.",
            [
                target(
                    """SELECT last("waiting") FROM "abuse" WHERE "kind" = 'backlog'
                AND $timeFilter GROUP BY time($__interval), "category" fill(none)""",
                    "$tag_category",
                )
            ],
            (0, 16, 12, 8),
            interval="1h",
            stack=True,
        ),
        panel(
            "timeseries",
            "How long until someone acts?",
            "Time to first action: from a case's opening to the first person's event on it "
            "(acknowledged, note, resolved), and from a report's arrival in the review queue "
            "to its classification; the mean per interval.",
            [
                target(
                    """SELECT mean("seconds") FROM "abuse" WHERE "kind" = 'action'
                AND $timeFilter GROUP BY time($__interval), "what" fill(none)""",
                    "$tag_what",
                )
            ],
            (12, 16, 12, 8),
            unit="s",
            interval="6h",
        ),
        panel(
            "timeseries",
            "Who reports us?",
            "Reports per hour by reporter (known reporters by name, the rest as 'other').",
            [
                target(
                    f"""SELECT sum("reports") FROM "abuse" WHERE {ALL} AND $timeFilter
                GROUP BY time($__interval), "reporter" fill(none)""",
                    "$tag_reporter",
                )
            ],
            (0, 24, 12, 8),
            interval="1h",
            stack=True,
            bars=True,
        ),
        panel(
            "timeseries",
            "Which reporters name addresses that are not ours?",
            "Addresses named in reports that belong to none of our customers, per reporter: "
            "counted, never a case. A reporter high here sends us other networks' reports.",
            [
                target(
                    f"""SELECT sum("addresses") FROM "abuse" WHERE {REPORTS}
                AND "customer" = 'none' AND $timeFilter
                GROUP BY time($__interval), "reporter" fill(none)""",
                    "$tag_reporter",
                )
            ],
            (12, 24, 12, 8),
            interval="1h",
            stack=True,
        ),
        panel(
            "table",
            "What do analysts reclassify?",
            "Reclassifications in the time range: the classifier's category, the analyst's, "
            "and how many (repmon reports export writes them as labelled examples).",
            [
                target(
                    """SELECT sum("reports") AS "reports" FROM "abuse"
                WHERE "kind" = 'reclassified' AND $timeFilter GROUP BY "previous", "category" """,
                    table=True,
                )
            ],
            (0, 32, 24, 6),
            transformations=[organize(["previous", "category", "reports"])],
            sort_by=("reports", True),
        ),
    ]
    customer = query_variable(
        "customer",
        "Customer",
        """SHOW TAG VALUES FROM "abuse" WITH KEY = "customer"
        WHERE "customer" !~ /^(all|none)$/""",
        multi=True,
    )
    return dashboard(
        ABUSE,
        "repmon / Abuse",
        "The abuse desk: reports per category, reporter and customer, the review queue and "
        "the time to first action.",
        panels,
        [customer],
        time_from="now-2d",
    )


# --- a synthetic run for the dashboard tests --------------------------------------------------

CUSTOMERS_RUN = ["acme", "globex", "initech"]
REPORTERS_RUN = ["Shadowserver", "blocklist.de", "Netcraft", "abuse.example.org"]


def sample_lines(end: dt.datetime | None = None, seed: int = 11, hours: int = 48) -> list[str]:
    """Two days of ``abuse`` points ending at ``end`` (default now): hourly counts per
    category, reporter and customer, the hourly backlog, first actions and reclassifications."""
    end = (end or dt.datetime.now(dt.UTC)).replace(minute=0, second=0, microsecond=0)
    rnd = random.Random(seed)
    rows: list[dict[str, Any]] = []
    backlog: list[str] = []
    actions: list[dict[str, Any]] = []
    moved: list[dict[str, Any]] = []
    for h in range(hours, -1, -1):
        at = end - dt.timedelta(hours=h)
        for _ in range(rnd.randint(1, 4)):
            category = rnd.choice(CATEGORIES)
            reporter = rnd.choice(REPORTERS_RUN)
            named = rnd.sample(CUSTOMERS_RUN, rnd.randint(0, 2))
            foreign = rnd.randint(0, 30)
            total = foreign
            for customer in named:
                n = rnd.randint(1, 5)
                total += n
                rows.append(_row(at, category, reporter, customer, n))
            if foreign or not named:
                rows.append(_row(at, category, reporter, "", foreign))
            rows.append(_row(at, category, reporter, "*", total))
        waiting = {c: (rnd.randint(0, 3), at - dt.timedelta(hours=rnd.randint(1, 30)))
                   for c in rnd.sample(CATEGORIES, 3)}  # fmt: skip
        backlog += backlog_points(waiting, at + dt.timedelta(minutes=30))
        if h % 3 == 0:
            actions.append({"what": "case", "category": rnd.choice(CATEGORIES),
                            "at": at + dt.timedelta(minutes=10),
                            "seconds": rnd.uniform(600, 20_000)})  # fmt: skip
            actions.append({"what": "review", "category": "other",
                            "at": at + dt.timedelta(minutes=20),
                            "seconds": rnd.uniform(1800, 40_000)})  # fmt: skip
            moved.append({"at": at + dt.timedelta(minutes=20), "category": rnd.choice(CATEGORIES),
                          "previous": "other"})  # fmt: skip
    return count_points(rows) + backlog + action_points(actions) + reclassified_points(moved)


def _row(at: dt.datetime, category: str, reporter: str, customer: str, n: int) -> dict[str, Any]:
    return {
        "bucket_start": at,
        "category": category,
        "reporter": reporter,
        "customer": customer,
        "reports": 1,
        "addresses": n,
    }
