"""The HTTP API of ``repmon run`` (FastAPI; OpenAPI at ``/openapi.json``, docs at ``/docs``).

Reading is open on the listen address (loopback by default); anything that
changes state needs ``Authorization: Bearer <[api] token>``. Without a
configured token, state changes over HTTP are refused (use the CLI).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Response
from pydantic import BaseModel, Field

from monitor import __version__
from monitor.adhoc import CHECK_GROUPS, CheckRequest, CheckRequestError, run_checks
from monitor.daemon.metrics import CONTENT_TYPE

if TYPE_CHECKING:
    from monitor.daemon.monitor import Monitor


class ResolveBody(BaseModel):
    note: str = Field(min_length=1, description="why the case is resolved")


class NoteBody(BaseModel):
    text: str = Field(min_length=1)


class VolumeBody(BaseModel):
    ip: str = Field(description="sending IP")
    count: int = Field(ge=0, description="messages sent")
    at: dt.datetime | None = Field(None, description="when (default: now); bucketed by hour")
    source: str = Field("http", max_length=32)


def create_app(monitor: Monitor) -> FastAPI:
    app = FastAPI(
        title="repmon",
        version=__version__,
        description="Email deliverability and reputation monitor: checks, cases, health.",
    )
    token = monitor.config.api.token.get_secret_value() if monitor.config.api.token else None

    def require_token(authorization: Annotated[str | None, Header()] = None) -> None:
        if token is None:
            raise HTTPException(403, "state changes over HTTP need [api] token in the config")
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, "missing or wrong bearer token")

    auth = [Depends(require_token)]

    @app.get("/healthz", summary="Is this instance alive, and does it lead?")
    async def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "instance": monitor.instance,
            "leader": monitor.leadership.is_leader,
            "spool_depth": monitor.sink.spool.depth(),
            "timeseries_buffer": monitor.writer.pending(),
            "started_at": monitor.started_at.isoformat(),
        }

    @app.get("/v1/check/{target:path}", summary="Run every check that fits a target now")
    async def check(
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
        try:
            results = await run_checks(monitor.config, req)
        except CheckRequestError as exc:
            raise HTTPException(422, str(exc)) from None
        return [r.to_json() for r in results]

    @app.get("/v1/status", summary="What is wrong now, and the jobs' last and next runs")
    async def status() -> dict[str, Any]:
        from monitor.store.checks import current_problems
        from monitor.store.jobs import job_table

        problems = await asyncio.to_thread(current_problems, monitor.store)
        jobs = await asyncio.to_thread(job_table, monitor.store)
        return {
            "problems": [
                {
                    "target": p.target,
                    "check": p.check,
                    "source": p.source,
                    "severity": p.severity,
                    "detail": p.detail,
                    "since": p.since,
                    "pool": p.pool,
                    "customer": p.customer,
                    **{k: p.data.get(k) for k in ("codes", "meaning", "reason", "delist")},
                }
                for p in problems
            ],
            "jobs": jobs,
        }

    @app.get("/v1/cases", summary="The case queue")
    async def cases_list(
        state: str | None = None, severity: str | None = None, type: str | None = None
    ) -> list[dict[str, Any]]:
        from monitor.cases import list_cases

        try:
            found = await asyncio.to_thread(list_cases, monitor.store, state, severity, type)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        return [c.to_json() for c in found]

    @app.get("/v1/cases/{case_id}", summary="One case with its evidence and timeline")
    async def case_show(case_id: int) -> dict[str, Any]:
        from monitor.cases import CaseNotFound, get_case

        try:
            return (await asyncio.to_thread(get_case, monitor.store, case_id)).to_json()
        except CaseNotFound as exc:
            raise HTTPException(404, str(exc)) from None

    async def _change(fn: Any, *args: Any, **kw: Any) -> dict[str, Any]:
        from monitor.cases import CaseNotFound, CaseStateError

        try:
            case = await asyncio.to_thread(fn, monitor.store, *args, **kw)
        except CaseNotFound as exc:
            raise HTTPException(404, str(exc)) from None
        except CaseStateError as exc:
            raise HTTPException(409, str(exc)) from None
        return case.to_json()

    @app.post("/v1/cases/{case_id}/ack", dependencies=auth, summary="Acknowledge a case")
    async def case_ack(case_id: int) -> dict[str, Any]:
        from monitor.cases import acknowledge

        return await _change(acknowledge, case_id, actor="api")

    @app.post("/v1/cases/{case_id}/resolve", dependencies=auth, summary="Resolve with a note")
    async def case_resolve(case_id: int, body: ResolveBody) -> dict[str, Any]:
        from monitor.cases import resolve

        return await _change(resolve, case_id, body.note, config=monitor.config, actor="api")

    @app.post("/v1/cases/{case_id}/notes", dependencies=auth, summary="Add a note")
    async def case_note(case_id: int, body: NoteBody) -> dict[str, Any]:
        from monitor.cases import add_note

        return await _change(add_note, case_id, body.text, actor="api")

    @app.post("/v1/volume", dependencies=auth, summary="Report messages sent by an IP")
    async def volume(body: VolumeBody) -> dict[str, Any]:
        from collectors.volume.sent import record_sent

        at = body.at or dt.datetime.now(dt.UTC)
        if at.tzinfo is None:
            raise HTTPException(422, "at: give a timezone (e.g. 2026-01-01T10:00:00Z)")
        try:
            await asyncio.to_thread(
                record_sent, monitor.store, body.ip, body.count, at, body.source
            )
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        return {"recorded": body.count}

    @app.get("/metrics", summary="repmon's own health (Prometheus text format)")
    async def metrics() -> Response:
        monitor.metrics.spool_depth.set(monitor.sink.spool.depth())
        monitor.metrics.buffer_depth.set(monitor.writer.pending())
        monitor.metrics.leader.set(1 if monitor.leadership.is_leader else 0)
        return Response(monitor.metrics.render(), media_type=CONTENT_TYPE)

    return app
