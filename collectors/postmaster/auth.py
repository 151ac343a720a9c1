"""Service-account credentials for the Postmaster Tools API (OAuth 2.0 JWT bearer flow).

``google-auth`` builds and signs the assertion (RS256, ``iss`` = the service account,
``scope``, one hour ``exp``) and trades it at the token endpoint for an access token; this
module only loads the key file and lends google-auth an httpx transport, so that every
request of the collector goes through one HTTP stack.

The token endpoint is the config's ``token_uri`` if set, else the key file's ``token_uri``,
else Google's. google-auth puts Google's token URL in the assertion's ``aud`` whatever the
endpoint, as Google's endpoint expects.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import google.auth.exceptions
import google.auth.transport
import httpx
from google.oauth2 import service_account

from checks.errors import RepmonError
from collectors.postmaster.config import PostmasterConfig

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
#: v1 traffic statistics and domains
SCOPE_V1 = "https://www.googleapis.com/auth/postmaster.readonly"
#: v2 compliance status
SCOPE_V2 = "https://www.googleapis.com/auth/postmaster.traffic.readonly"


class CredentialsError(RepmonError):
    """The service-account key file cannot be used; the message names the file, not the key."""


def scopes(config: PostmasterConfig) -> list[str]:
    return [SCOPE_V1, SCOPE_V2] if config.compliance else [SCOPE_V1]


def load_credentials(config: PostmasterConfig) -> service_account.Credentials:
    """The service account of ``[postmaster] credentials_file``, scoped, not yet refreshed."""
    path = Path(config.credentials_file)
    where = f"[postmaster] credentials_file {path}"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CredentialsError(f"{where}: cannot read: {exc.strerror}") from None
    except ValueError:
        raise CredentialsError(f"{where}: not a JSON service-account key") from None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise CredentialsError(f"{where}: not a service-account key (type service_account)")
    info["token_uri"] = config.token_uri or info.get("token_uri") or GOOGLE_TOKEN_URI
    try:
        return service_account.Credentials.from_service_account_info(info, scopes=scopes(config))
    except (ValueError, TypeError) as exc:
        # google-auth names missing fields; a bad private key gets cryptography's message,
        # which does not quote the key
        raise CredentialsError(f"{where}: not a usable key: {str(exc)[:200]}") from None


class _Response(google.auth.transport.Response):
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    @property
    def data(self) -> bytes:
        return self._response.content


class HttpxRequest(google.auth.transport.Request):
    """google-auth's transport interface over an ``httpx.Client``."""

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> _Response:
        try:
            response = self._client.request(
                method,
                url,
                content=body,
                headers=headers,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.HTTPError as exc:
            raise google.auth.exceptions.TransportError(f"{type(exc).__name__}: {exc}") from exc
        return _Response(response)
