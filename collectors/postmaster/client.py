"""The Postmaster Tools API over HTTP: domains, traffic statistics, compliance status.

Every call pages through ``nextPageToken``, and is retried a bounded number of times: after a
connection error or a 5xx with doubling pauses, after a 429 with the server's ``Retry-After``
when it is no longer than ``max_retry_after``. A 401 gets one fresh access token, then is an
:class:`AuthRejected`; a 403 is :class:`AccessDenied`.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import math
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any

import google.auth.exceptions
import httpx
from google.oauth2 import service_account

from checks.errors import ParseError, RepmonError
from collectors.postmaster.auth import HttpxRequest, load_credentials
from collectors.postmaster.config import PostmasterConfig
from collectors.postmaster.model import DomainCompliance, DomainDay, RegisteredDomain
from collectors.postmaster.parse import (
    next_page,
    parse_compliance,
    parse_domains,
    parse_traffic_page,
)

log = logging.getLogger(__name__)

USER_AGENT = "repmon-postmaster/1"
RENEW = "renew the service-account key or grant it access in Postmaster Tools"
GRANT = "grant the service account access to the domain in Postmaster Tools"
#: a runaway pager (a server repeating tokens) stops here
MAX_PAGES = 1000


class PostmasterError(RepmonError):
    """A Postmaster Tools call failed; the message is safe to show."""


class AuthRejected(PostmasterError):
    """The key or the access token was refused (401, or the token endpoint said no)."""


class AccessDenied(PostmasterError):
    """The service account may not read this (403 PERMISSION_DENIED)."""


class Unavailable(PostmasterError):
    """No useful answer after the retries (connection, 5xx, 429)."""


class PostmasterClient:
    """Blocking client; use as a context manager."""

    def __init__(
        self,
        config: PostmasterConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        credentials: service_account.Credentials | None = None,
        backoff: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._config = config
        self._base = config.api_base
        self._credentials = credentials or load_credentials(config)
        self._http = httpx.Client(
            transport=transport,
            proxy=config.proxy or None,
            # the same behaviour on every host: no proxy or certificate settings from the
            # environment, only what [postmaster] says
            trust_env=False,
            timeout=config.timeout,
            headers={"User-Agent": USER_AGENT},
            follow_redirects=False,
        )
        self._auth = HttpxRequest(self._http)
        self._backoff = backoff
        self._sleep = sleep

    def __enter__(self) -> PostmasterClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @property
    def account(self) -> str:
        """The service account's e-mail address (what to grant access to)."""
        return str(self._credentials.service_account_email)

    def domains(self) -> list[RegisteredDomain]:
        """Every domain registered for the service account (``v1/domains``, all pages)."""
        out = []
        for page in self._pages("/v1/domains", {}, "domains.list"):
            out += parse_domains(page)
        return out

    def traffic_stats(self, domain: str, start: dt.date, end: dt.date) -> list[DomainDay]:
        """Days ``start`` (inclusive) to ``end`` (exclusive) of ``domain``, all pages."""
        params = {
            "startDate.year": str(start.year),
            "startDate.month": str(start.month),
            "startDate.day": str(start.day),
            "endDate.year": str(end.year),
            "endDate.month": str(end.month),
            "endDate.day": str(end.day),
        }
        out = []
        path = f"/v1/domains/{_segment(domain)}/trafficStats"
        for page in self._pages(path, params, f"trafficStats of {domain}"):
            out += parse_traffic_page(page)
        return out

    def compliance(self, domain: str) -> DomainCompliance:
        """The v2 compliance status of ``domain``."""
        path = f"/v2/domains/{_segment(domain)}/complianceStatus"
        return parse_compliance(self._get(path, {}, f"complianceStatus of {domain}"), domain)

    def _pages(self, path: str, params: dict[str, str], what: str) -> Iterator[Mapping[str, Any]]:
        token = ""
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            query = {**params, "pageSize": str(self._config.page_size)}
            if token:
                query["pageToken"] = token
            page = self._get(path, query, what)
            yield page
            token = next_page(page)
            if not token:
                return
            if token in seen:
                raise PostmasterError(f"{what}: the server repeated a page token")
            seen.add(token)
        raise PostmasterError(f"{what}: more than {MAX_PAGES} pages")

    def _get(self, path: str, params: dict[str, str], what: str) -> Mapping[str, Any]:
        url = self._base + path
        attempt, refreshed = 0, False
        while True:
            headers = self._authorize(url, what)
            try:
                response = self._http.get(url, params=params, headers=headers)
            except httpx.HTTPError as exc:
                reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
                attempt = self._again(attempt, what, reason, None)
                continue
            status = response.status_code
            if status == 200:
                return _json(response, what)
            message = _error_message(response)
            if status == 401 and not refreshed:
                # the token may have been revoked early: one fresh token, then give up
                self._refresh(what)
                refreshed = True
                continue
            if status == 401:
                raise AuthRejected(f"{what}: HTTP 401 {message}: {RENEW}")
            if status == 403:
                raise AccessDenied(f"{what}: HTTP 403 {message}: {GRANT}")
            if status == 429:
                attempt = self._again(attempt, what, f"HTTP 429 {message}", _retry_after(response))
                continue
            if 500 <= status < 600:
                attempt = self._again(attempt, what, f"HTTP {status} {message}", None)
                continue
            raise PostmasterError(f"{what}: HTTP {status} {message}".rstrip())

    def _authorize(self, url: str, what: str) -> dict[str, str]:
        headers: dict[str, str] = {}
        try:
            self._credentials.before_request(self._auth, "GET", url, headers)
        except google.auth.exceptions.GoogleAuthError as exc:
            raise self._token_failure(exc, what) from None
        return headers

    def _refresh(self, what: str) -> None:
        try:
            self._credentials.refresh(self._auth)
        except google.auth.exceptions.GoogleAuthError as exc:
            raise self._token_failure(exc, what) from None

    def _token_failure(self, exc: google.auth.exceptions.GoogleAuthError, what: str) -> Exception:
        detail = exc.args[0] if exc.args and isinstance(exc.args[0], str) else type(exc).__name__
        if isinstance(exc, google.auth.exceptions.TransportError) or getattr(
            exc, "retryable", False
        ):
            return Unavailable(f"{what}: the token endpoint did not answer: {detail}")
        return AuthRejected(f"{what}: the token endpoint refused the key ({detail}): {RENEW}")

    def _again(self, attempt: int, what: str, reason: str, retry_after: float | None) -> int:
        """Sleep before the next attempt, or raise :class:`Unavailable` when it is time to stop."""
        limit = self._config.max_retry_after
        if attempt >= self._config.retries:
            raise Unavailable(f"{what}: {reason} (gave up after {attempt + 1} attempts)")
        if retry_after is not None and retry_after > limit:
            raise Unavailable(
                f"{what}: {reason}; asked to wait {retry_after:.0f}s, more than "
                f"max_retry_after ({limit:.0f}s)"
            )
        wait = retry_after if retry_after is not None else min(self._backoff * 2**attempt, limit)
        log.info("Postmaster Tools %s: %s; trying again in %.1fs", what, reason, wait)
        self._sleep(wait)
        return attempt + 1


def _segment(domain: str) -> str:
    return urllib.parse.quote(domain, safe="")


def _json(response: httpx.Response, what: str) -> Mapping[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise ParseError(f"Postmaster Tools {what}: the answer is not JSON") from None
    if not isinstance(data, dict):
        raise ParseError(f"Postmaster Tools {what}: the answer is not a JSON object")
    return data


def _error_message(response: httpx.Response) -> str:
    """Google's ``{"error": {"status", "message"}}``, shortened; "" when there is none."""
    try:
        error = response.json().get("error", {})
        text = f"{error.get('status', '')}: {error.get('message', '')}".strip(": ")
    except (ValueError, AttributeError):
        return ""
    return text[:300]


def _retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (a number or an HTTP date), None when absent or unreadable."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = (when - dt.datetime.now(dt.UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)
