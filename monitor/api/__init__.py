"""The HTTP API of ``repmon run`` (FastAPI; OpenAPI at ``/openapi.json``, docs at ``/docs``).

Every request passes :class:`~monitor.api.guard.Guard` first (rate limit, bearer token,
body size, before anything is read): reads need ``[api] read_token`` or ``token`` (or
``open_reads`` on loopback), state changes need ``token``; ``/healthz`` is open. The
interactive ``/docs`` page is off (it would load its assets from a CDN); the OpenAPI
document is at ``/openapi.json``. Each area is a router of its own module; the API sees the
daemon only through :class:`~monitor.api.seam.Daemon`. See docs/security.md.
"""

from __future__ import annotations

from fastapi import FastAPI

from monitor import __version__
from monitor.api import cases, checks, errors, feedback, health, reports, volume
from monitor.api.guard import Guard
from monitor.api.seam import Daemon

__all__ = ["Daemon", "create_app"]


def create_app(daemon: Daemon) -> FastAPI:
    app = FastAPI(
        title="repmon",
        version=__version__,
        description="Email deliverability and reputation monitor: checks, cases, health.",
        docs_url=None,
        redoc_url=None,
    )
    errors.install(app)
    app.add_middleware(Guard, config=daemon.config.api)
    for area in (health, checks, cases, feedback, volume, reports):
        app.include_router(area.router(daemon))
    return app
