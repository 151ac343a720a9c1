"""``/v1/volume``: an MTA reports how many messages an IP sent."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from collectors.volume.sent import sent_count
from monitor.api.seam import Daemon
from monitor.store.volume import add_sent


class VolumeBody(BaseModel):
    ip: str = Field(description="sending IP")
    count: int = Field(ge=0, le=10**9, description="messages sent (at most 10^9 a report)")
    at: dt.datetime | None = Field(None, description="when (default: now); bucketed by hour")
    source: str = Field("http", max_length=32, pattern=r"^[^\x00]*$")


def router(daemon: Daemon) -> APIRouter:
    r = APIRouter()

    @r.post("/v1/volume", summary="Report messages sent by an IP")
    async def volume(body: VolumeBody) -> dict[str, Any]:
        at = body.at or dt.datetime.now(dt.UTC)
        if at.tzinfo is None:
            raise HTTPException(422, "at: give a timezone (e.g. 2026-01-01T10:00:00Z)")
        row = sent_count(body.ip, body.count, at, body.source)
        await asyncio.to_thread(add_sent, daemon.store, [row])
        return {"recorded": body.count}

    return r
