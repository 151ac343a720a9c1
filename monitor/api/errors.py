"""repmon's errors as HTTP answers, in one place: routes raise, this maps.

An error class may name its own status (``http_status``, e.g. 429 or 504); otherwise
``UsageError`` → 422 (``CaseNotFound`` 404, ``CaseStateError`` 409), ``StoreUnavailable`` →
503 with ``Retry-After``, any other ``RepmonError`` → 500 with its message. No traceback is
ever sent.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from checks.errors import (
    CaseNotFound,
    CaseStateError,
    RepmonError,
    StoreUnavailable,
    UsageError,
)

log = logging.getLogger("repmon.api")


def http_status(exc: RepmonError) -> int:
    own = getattr(exc, "http_status", None)
    if isinstance(own, int):
        return own
    if isinstance(exc, CaseNotFound):
        return 404
    if isinstance(exc, CaseStateError):
        return 409
    if isinstance(exc, UsageError):
        return 422
    if isinstance(exc, StoreUnavailable):
        return 503
    return 500


async def _answer(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RepmonError)
    status = http_status(exc)
    if status >= 500:
        log.error("%s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
    headers = {"Retry-After": "30"} if status == 503 else None
    return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RepmonError, _answer)
