"""The HTTP API of ``repmon run`` (FastAPI; OpenAPI at ``/openapi.json``, docs at ``/docs``).

Reading is open on the listen address (loopback by default); anything that changes state
needs ``Authorization: Bearer <[api] token>``; without a configured token, state changes over
HTTP are refused (use the CLI). Each area is a router of its own module; the API sees the
daemon only through :class:`~monitor.api.seam.Daemon`.
"""

from __future__ import annotations

from fastapi import FastAPI

from monitor import __version__
from monitor.api import cases, checks, errors, health, volume
from monitor.api.seam import Daemon

__all__ = ["Daemon", "create_app"]


def create_app(daemon: Daemon) -> FastAPI:
    app = FastAPI(
        title="repmon",
        version=__version__,
        description="Email deliverability and reputation monitor: checks, cases, health.",
    )
    errors.install(app)
    for area in (health, checks, cases, volume):
        app.include_router(area.router(daemon))
    return app
