"""``/v1/volume``: an MTA reports how many messages an IP sent."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from collectors.volume.sent import record_sent
from monitor.api.auth import token_check
from monitor.api.seam import Daemon


class VolumeBody(BaseModel):
    ip: str = Field(description="sending IP")
    count: int = Field(ge=0, description="messages sent")
    at: dt.datetime | None = Field(None, description="when (default: now); bucketed by hour")
    source: str = Field("http", max_length=32)


def router(daemon: Daemon) -> APIRouter:
    r = APIRouter()

    @r.post(
        "/v1/volume", dependencies=[Depends(token_check(daemon))], summary="Report messages sent"
    )
    async def volume(body: VolumeBody) -> dict[str, Any]:
        at = body.at or dt.datetime.now(dt.UTC)
        if at.tzinfo is None:
            raise HTTPException(422, "at: give a timezone (e.g. 2026-01-01T10:00:00Z)")
        await asyncio.to_thread(record_sent, daemon.store, body.ip, body.count, at, body.source)
        return {"recorded": body.count}

    return r
