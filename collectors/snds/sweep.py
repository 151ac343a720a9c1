"""The scheduled SNDS fetch: off unless ``[snds] key`` is set."""

from __future__ import annotations

import datetime as dt

from collectors.snds.collect import collect_snds
from collectors.snds.config import SndsConfig
from collectors.sweep import SweepSummary, report_sweep
from collectors.unit import SweepContext


async def run(ctx: SweepContext) -> SweepSummary:
    section: SndsConfig = ctx.section
    if not section.configured:
        return SweepSummary("snds", dt.datetime.now(dt.UTC))
    return await report_sweep("snds", ctx.recorder, lambda: collect_snds(section, ctx.targets))
