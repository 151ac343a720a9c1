"""Fetching the SNDS automated-access exports over HTTP.

The key is part of the URL query (that is how SNDS authenticates), so:

* requests go straight to the httpx transport, not through ``httpx.Client``, whose logger
  writes every request URL at INFO level;
* every message this module builds or passes on goes through :meth:`SndsClient.mask`.

An expired or revoked key does not get a clean 401 from SNDS: it gets a redirect to, or the
HTML of, the sign-in page. All of these are :class:`SndsKeyRejected`.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import urllib.parse
from collections.abc import Callable
from types import TracebackType

import httpx

from checks.errors import RepmonError
from collectors.snds.config import SndsConfig
from collectors.snds.parse import looks_like_html

log = logging.getLogger(__name__)

USER_AGENT = "repmon-snds/1"
RENEW = "renew the SNDS key (SNDS > Automated Access) and update [snds] key"


class SndsError(RepmonError):
    """SNDS could not be asked; the message is safe to show (the key is masked)."""


class SndsKeyRejected(SndsError):
    """The key was refused: expired, revoked or mistyped."""


class SndsUnavailable(SndsError):
    """SNDS did not answer usefully (connection, timeout, 5xx) after the retries."""


def snds_date(day: dt.date) -> str:
    """The ``date`` parameter of ``data.aspx``: MMDDYY."""
    return day.strftime("%m%d%y")


class SndsClient:
    """Blocking client for ``data.aspx`` and ``ipStatus.aspx``; use as a context manager."""

    def __init__(
        self,
        config: SndsConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        backoff: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if config.key is None:
            raise SndsError("[snds] key is not set")
        self._key = config.key.get_secret_value()
        self._base = config.base_url
        self._retries = config.retries
        self._timeout = httpx.Timeout(config.timeout).as_dict()
        self._transport = transport or httpx.HTTPTransport(proxy=config.proxy or None)
        self._backoff = backoff
        self._sleep = sleep

    def __enter__(self) -> SndsClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()

    def mask(self, text: str) -> str:
        """``text`` with the key (plain and URL-encoded) replaced by ``***``."""
        for form in {
            self._key,
            urllib.parse.quote(self._key, safe=""),
            urllib.parse.quote_plus(self._key),
        }:
            text = text.replace(form, "***")
        return text

    def activity(self, day: dt.date) -> str:
        """The data export for ``day`` as text ("" when SNDS has nothing for it yet)."""
        return self._get("data.aspx", {"date": snds_date(day)}, f"data export for {day}")

    def ip_status(self) -> str:
        """The IP status export as text ("" when no range is blocked)."""
        return self._get("ipStatus.aspx", {}, "IP status export")

    def _get(self, page: str, params: dict[str, str], what: str) -> str:
        query = urllib.parse.urlencode({"key": self._key, **params})
        url = f"{self._base}/{page}?{query}"
        shown = self.mask(url)
        attempt = 0
        while True:
            try:
                status, headers, body = self._send(url)
            except httpx.HTTPError as exc:
                reason = self.mask(f"{type(exc).__name__}: {exc}".rstrip(": "))
                if attempt < self._retries:
                    attempt = self._pause(attempt, shown, reason)
                    continue
                raise SndsUnavailable(f"SNDS {what}: {reason}") from None
            if 500 <= status < 600:
                if attempt < self._retries:
                    attempt = self._pause(attempt, shown, f"HTTP {status}")
                    continue
                raise SndsUnavailable(f"SNDS {what}: HTTP {status} after {attempt + 1} attempts")
            break
        if status in (401, 403):
            raise SndsKeyRejected(f"SNDS {what}: HTTP {status}: {RENEW}")
        if 300 <= status < 400:
            # SNDS sends a refused key to its sign-in page
            raise SndsKeyRejected(f"SNDS {what}: redirected to a sign-in page: {RENEW}")
        if status != 200:
            raise SndsError(f"SNDS {what}: HTTP {status} from {shown}")
        text = body.decode("utf-8-sig", errors="replace")
        if "html" in headers.get("content-type", "").lower() or looks_like_html(text):
            raise SndsKeyRejected(f"SNDS {what}: a web page (sign-in?) instead of CSV: {RENEW}")
        return text

    def _send(self, url: str) -> tuple[int, httpx.Headers, bytes]:
        request = httpx.Request(
            "GET",
            url,
            headers={"User-Agent": USER_AGENT, "Accept": "text/csv, text/plain, */*"},
            extensions={"timeout": self._timeout},
        )
        response = self._transport.handle_request(request)
        try:
            body = response.read()
        finally:
            response.close()
        return response.status_code, response.headers, body

    def _pause(self, attempt: int, shown: str, reason: str) -> int:
        wait = self._backoff * 2**attempt
        log.info("SNDS %s: %s; trying again in %.1fs", shown, reason, wait)
        self._sleep(wait)
        return attempt + 1
