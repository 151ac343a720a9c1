"""``/v1/check`` and ``/v1/status``: ad hoc checks, and what is wrong now."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request

from monitor.adhoc import CHECK_GROUPS, CheckRequest
from monitor.api.seam import Daemon
from monitor.store.checks import current_problems
from monitor.store.jobs import job_table
from monitor.views import problem_json


def router(daemon: Daemon) -> APIRouter:
    r = APIRouter()

    @r.get("/v1/check/{target:path}", summary="Run every check that fits a target now")
    async def check(
        request: Request,
        target: str,
        zone: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI query lists
        selector: Annotated[list[str], Query()] = [],  # noqa: B006
        domain: Annotated[list[str], Query()] = [],  # noqa: B006
        only: str | None = None,
    ) -> list[dict[str, Any]]:
        if only is not None and only not in CHECK_GROUPS:
            raise HTTPException(422, f"only: expected one of {', '.join(CHECK_GROUPS)}")
        req = CheckRequest(
            targets=[target],
            zones=zone,
            selectors=selector,
            domains=domain,
            only=(only,) if only else (("dnsbl",) if zone else CHECK_GROUPS),
        )
        results = await daemon.check(req, request.is_disconnected)
        return [res.to_json() for res in results]

    @r.get("/v1/status", summary="What is wrong now, and the jobs' last and next runs")
    async def status() -> dict[str, Any]:
        problems = await asyncio.to_thread(current_problems, daemon.store)
        jobs = await asyncio.to_thread(job_table, daemon.store)
        return {"problems": [problem_json(p) for p in problems], "jobs": jobs}

    return r
