"""``/v1/reports``: abuse reports and their review queue; an analyst's reclassification."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field

from checks.errors import UsageError
from collectors.abuse.model import Category
from monitor.abuse_intake import ReportNotFound, reclassify_report
from monitor.api.seam import Daemon
from monitor.config import parse_duration
from monitor.store import utcnow
from monitor.store.abuse import count_reports, find_reports, report_with_addresses

#: report ids are 32-bit in the store; a larger one is a bad request, not a crash
ReportId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class ReclassifyBody(BaseModel):
    category: Category = Field(description="the analyst's category")
    by: str = Field(
        "api", min_length=1, max_length=64, pattern=r"^[^\x00]*$", description="who decides"
    )
    evaluate: bool = Field(True, description="run the rules now, so the cases follow")


def router(daemon: Daemon) -> APIRouter:
    r = APIRouter()

    @r.get("/v1/reports", summary="Abuse reports, newest first (review=true: the review queue)")
    async def reports_list(
        response: Response,
        review: bool = False,
        category: Category | None = None,
        customer: str | None = None,
        reporter: str | None = None,
        since: str | None = None,
        limit: Annotated[int, Query(ge=0, le=100_000, description="0 = all")] = 100,
    ) -> list[dict[str, Any]]:
        start = None
        if since:
            try:
                start = utcnow() - dt.timedelta(seconds=parse_duration(since))
            except ValueError as exc:
                raise UsageError(f"since: {exc}") from None
        filters: dict[str, Any] = {
            "review": review,
            "category": category,
            "customer": customer,
            "reporter": reporter,
            "since": start,
        }
        found = await asyncio.to_thread(
            find_reports, daemon.store, **filters, limit=limit or None, oldest_first=review
        )
        total = await asyncio.to_thread(count_reports, daemon.store, **filters)
        response.headers["X-Total-Count"] = str(total)
        return [x.to_json() for x in found]

    @r.get("/v1/reports/{report_id}", summary="One abuse report with its attribution")
    async def report_show(report_id: ReportId) -> dict[str, Any]:
        found = await asyncio.to_thread(report_with_addresses, daemon.store, report_id)
        if found is None:
            raise ReportNotFound(f"no abuse report {report_id}")
        return found.to_json()

    @r.post(
        "/v1/reports/{report_id}/reclassify",
        summary="An analyst's category for a report (the cases follow)",
    )
    async def report_reclassify(report_id: ReportId, body: ReclassifyBody) -> dict[str, Any]:
        done = await asyncio.to_thread(
            reclassify_report,
            daemon.store,
            daemon.config,
            report_id,
            body.category,
            body.by,
            run_rules=body.evaluate,
        )
        return done.to_json()

    return r
