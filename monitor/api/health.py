"""``/healthz`` and ``/metrics``: is this instance alive, and its own numbers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from monitor.api.seam import Daemon

#: the Prometheus text exposition format
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def router(daemon: Daemon) -> APIRouter:
    r = APIRouter()

    @r.get("/healthz", summary="Is this instance alive, and does it lead?")
    async def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "instance": daemon.instance,
            "leader": daemon.is_leader(),
            "spool_depth": daemon.spool_depth(),
            "timeseries_buffer": daemon.timeseries_pending(),
            "started_at": daemon.started_at.isoformat(),
        }

    @r.get("/metrics", summary="repmon's own health (Prometheus text format)")
    async def metrics() -> Response:
        return Response(daemon.metrics_text(), media_type=CONTENT_TYPE)

    return r
