"""The scheduled Postmaster Tools fetch: off unless ``[postmaster] credentials_file`` is set."""

from __future__ import annotations

import datetime as dt

from collectors.postmaster.collect import collect_postmaster
from collectors.postmaster.config import PostmasterConfig
from collectors.sweep import SweepSummary, report_sweep
from collectors.unit import SweepContext


async def run(ctx: SweepContext) -> SweepSummary:
    section: PostmasterConfig = ctx.section
    if not section.configured:
        return SweepSummary("postmaster", dt.datetime.now(dt.UTC))
    return await report_sweep(
        "postmaster", ctx.recorder, lambda: collect_postmaster(section, ctx.targets)
    )
