"""``/v1/cases``: the case queue, one case, and the analyst's actions on it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Response
from pydantic import BaseModel, Field

from monitor.api.seam import Daemon
from monitor.cases import (
    Case,
    acknowledge,
    add_note,
    count_matching,
    get_case,
    list_cases,
    resolve,
)

#: what a stored text may be: no NUL (PostgreSQL refuses it), bounded
_TEXT = r"^[^\x00]*$"
#: case ids are 32-bit in the store; a larger one is a bad request, not a crash
CaseId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class ResolveBody(BaseModel):
    note: str = Field(
        min_length=1, max_length=10_000, pattern=_TEXT, description="why the case is resolved"
    )


class NoteBody(BaseModel):
    text: str = Field(min_length=1, max_length=10_000, pattern=_TEXT)


def router(daemon: Daemon) -> APIRouter:
    r = APIRouter()

    async def change(fn: Callable[..., Case], *args: Any, **kw: Any) -> dict[str, Any]:
        case = await asyncio.to_thread(fn, daemon.store, *args, **kw)
        return case.to_json()

    @r.get("/v1/cases", summary="The case queue, worst first (X-Total-Count: all matching)")
    async def cases_list(
        response: Response,
        state: str | None = None,
        severity: str | None = None,
        type: str | None = None,
        limit: Annotated[int, Query(ge=0, le=100_000, description="0 = all")] = 500,
    ) -> list[dict[str, Any]]:
        try:
            found = await asyncio.to_thread(
                list_cases, daemon.store, state, severity, type, limit or None
            )
            total = await asyncio.to_thread(count_matching, daemon.store, state, severity, type)
        except ValueError as exc:  # an unknown state, severity or type
            raise HTTPException(422, str(exc)) from None
        response.headers["X-Total-Count"] = str(total)
        return [c.to_json() for c in found]

    @r.get("/v1/cases/{case_id}", summary="One case with its evidence and timeline")
    async def case_show(case_id: CaseId) -> dict[str, Any]:
        return (await asyncio.to_thread(get_case, daemon.store, case_id)).to_json()

    @r.post("/v1/cases/{case_id}/ack", summary="Acknowledge a case")
    async def case_ack(case_id: CaseId) -> dict[str, Any]:
        return await change(acknowledge, case_id, actor="api")

    @r.post("/v1/cases/{case_id}/resolve", summary="Resolve with a note")
    async def case_resolve(case_id: CaseId, body: ResolveBody) -> dict[str, Any]:
        return await change(resolve, case_id, body.note, config=daemon.config, actor="api")

    @r.post("/v1/cases/{case_id}/notes", summary="Add a note")
    async def case_note(case_id: CaseId, body: NoteBody) -> dict[str, Any]:
        return await change(add_note, case_id, body.text, actor="api")

    return r
