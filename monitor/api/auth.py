"""The bearer token that state changes need."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Header, HTTPException

from monitor.api.seam import Daemon


def token_check(daemon: Daemon) -> Callable[[str | None], None]:
    """A dependency that refuses a request without ``Authorization: Bearer <[api] token>``."""
    secret = daemon.config.api.token
    token = secret.get_secret_value() if secret else None

    def require_token(authorization: Annotated[str | None, Header()] = None) -> None:
        if token is None:
            raise HTTPException(403, "state changes over HTTP need [api] token in the config")
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, "missing or wrong bearer token")

    return require_token
