"""``/v1/feedback``: volume, bounces, complaints and rates per sending IP, pool or customer."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query

from checks.errors import UsageError
from monitor.api.seam import Daemon
from monitor.config import parse_duration
from monitor.inventory import Inventory
from monitor.reputation import reputation


def router(daemon: Daemon) -> APIRouter:
    r = APIRouter()
    inventory = Inventory.from_config(daemon.config)

    @r.get("/v1/feedback", summary="What the mailbox providers told us, per subject, worst first")
    async def feedback(
        by: Annotated[str, Query(pattern="^(ip|pool|customer)$")] = "ip",
        subject: str | None = None,
        since: str | None = None,
        limit: Annotated[int, Query(ge=0, le=100_000)] = 500,
    ) -> dict[str, Any]:
        try:
            window = dt.timedelta(seconds=parse_duration(since)) if since else None
        except ValueError as exc:
            raise UsageError(f"since: {exc}") from None
        found = await asyncio.to_thread(
            reputation, daemon.store, daemon.config, inventory, by, window, subject
        )
        shown = found[:limit] if limit else found
        return {"total": len(found), "subjects": [x.to_json() for x in shown]}

    return r
