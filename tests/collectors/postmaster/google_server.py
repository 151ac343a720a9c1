"""A loopback stand-in for Google: an OAuth 2.0 token endpoint and the Postmaster Tools API.

The token endpoint takes the JWT bearer grant (RFC 7523) and checks the assertion the way
Google documents it: RS256 signature by the service account's key (verified with the public
half, using ``cryptography``), ``iss`` = the service account, ``aud`` = Google's token URL,
``scope`` holding the scopes asked for, ``exp`` in the future and at most an hour after
``iat``. It hands out opaque access tokens, which the API side then requires.

The API side serves ``v1/domains``, ``v1/domains/D/trafficStats`` (filtered by the date
parameters, paged two per page with ``nextPageToken``) and ``v2/domains/D/complianceStatus``
as JSON in the published shapes, and can be told to answer the next requests of a path with
anything else (429 with Retry-After, 503, 401 ...).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

GOOGLE_AUDIENCE = "https://oauth2.googleapis.com/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
PAGE = 2

Answer = tuple[int, dict[str, str], bytes]


@dataclass
class GoogleState:
    public_key: rsa.RSAPublicKey
    client_email: str
    #: scopes the token endpoint insists on
    required_scopes: set[str]
    domains: list[dict[str, Any]] = field(default_factory=list)
    #: domain -> TrafficStats objects, any order
    stats: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    compliance: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: domains whose statistics answer 403 PERMISSION_DENIED
    denied: set[str] = field(default_factory=set)
    #: access token -> its scopes
    tokens: dict[str, set[str]] = field(default_factory=dict)
    #: path prefix -> answers given first, before the normal behaviour resumes
    queued: dict[str, list[Answer]] = field(default_factory=dict)
    #: (method, path with query) of every request
    seen: list[tuple[str, str]] = field(default_factory=list)
    #: (path, claims) of every assertion that passed the checks
    grants: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: why assertions were refused
    refusals: list[str] = field(default_factory=list)


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def check_assertion(state: GoogleState, assertion: str) -> dict[str, Any]:
    """The claims of a valid assertion; ValueError saying what is wrong otherwise."""
    try:
        head, body, signature = assertion.split(".")
        header = json.loads(_b64(head))
        claims = json.loads(_b64(body))
    except ValueError:
        raise ValueError("not a JWT") from None
    if header.get("alg") != "RS256":
        raise ValueError(f"alg {header.get('alg')!r}")
    try:
        state.public_key.verify(
            _b64(signature), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256()
        )
    except InvalidSignature:
        raise ValueError("Invalid JWT Signature.") from None
    now = time.time()
    if claims.get("iss") != state.client_email:
        raise ValueError(f"iss {claims.get('iss')!r}")
    if claims.get("aud") != GOOGLE_AUDIENCE:
        raise ValueError(f"aud {claims.get('aud')!r}")
    if not state.required_scopes <= set(str(claims.get("scope", "")).split()):
        raise ValueError(f"scope {claims.get('scope')!r}")
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int) or not isinstance(iat, int):
        raise ValueError("exp/iat missing")
    if exp <= now or iat > now + 60 or exp - iat > 3600:
        raise ValueError("Invalid JWT: Token must be a short-lived token (60 minutes)")
    return claims


def _json(status: int, payload: object, headers: dict[str, str] | None = None) -> Answer:
    return (
        status,
        {"Content-Type": "application/json", **(headers or {})},
        json.dumps(payload).encode(),
    )


def google_error(code: int, status: str, message: str) -> Answer:
    return _json(code, {"error": {"code": code, "status": status, "message": message}})


def _handler(state: GoogleState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        #: one write per response: header and body apart meet delayed ACKs on loopback
        wbufsize = -1

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            state.seen.append(("POST", self.path))
            length = int(self.headers.get("Content-Length", "0"))
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            if not self.path.endswith("/token"):
                return self._send(*google_error(404, "NOT_FOUND", "no such endpoint"))
            if form.get("grant_type") != [JWT_BEARER]:
                return self._send(*_json(400, {"error": "unsupported_grant_type"}))
            try:
                claims = check_assertion(state, form.get("assertion", [""])[0])
            except ValueError as exc:
                state.refusals.append(str(exc))
                return self._send(
                    *_json(400, {"error": "invalid_grant", "error_description": str(exc)})
                )
            state.grants.append((self.path, claims))
            token = "ya29." + secrets.token_urlsafe(24)
            state.tokens[token] = set(claims["scope"].split())
            self._send(
                *_json(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})
            )

        def do_GET(self) -> None:  # noqa: N802
            state.seen.append(("GET", self.path))
            url = urllib.parse.urlsplit(self.path)
            query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
            for prefix, answers in state.queued.items():
                if url.path.startswith(prefix) and answers:
                    return self._send(*answers.pop(0))
            auth = self.headers.get("Authorization", "")
            token = auth.removeprefix("Bearer ")
            if not auth.startswith("Bearer ") or token not in state.tokens:
                return self._send(
                    *google_error(
                        401,
                        "UNAUTHENTICATED",
                        "Request had invalid authentication credentials.",
                    )
                )
            parts = url.path.strip("/").split("/")
            if parts == ["v1", "domains"]:
                return self._page(state.domains, query, "domains")
            if len(parts) == 4 and parts[:2] == ["v1", "domains"] and parts[3] == "trafficStats":
                return self._traffic(urllib.parse.unquote(parts[2]), query)
            if len(parts) == 4 and parts[:2] == ["v2", "domains"]:
                if (
                    "https://www.googleapis.com/auth/postmaster.traffic.readonly"
                    not in (state.tokens[token])
                ):
                    return self._send(
                        *google_error(403, "PERMISSION_DENIED", "insufficient scopes")
                    )
                found = state.compliance.get(urllib.parse.unquote(parts[2]))
                if found is None:
                    return self._send(*google_error(404, "NOT_FOUND", "no compliance data"))
                return self._send(*_json(200, found))
            self._send(*google_error(404, "NOT_FOUND", "no such resource"))

        def _traffic(self, domain: str, query: dict[str, str]) -> None:
            if domain in state.denied:
                return self._send(
                    *google_error(
                        403,
                        "PERMISSION_DENIED",
                        "The caller does not have permission",
                    )
                )
            start = dt.date(
                int(query["startDate.year"]),
                int(query["startDate.month"]),
                int(query["startDate.day"]),
            )
            end = dt.date(
                int(query["endDate.year"]), int(query["endDate.month"]), int(query["endDate.day"])
            )
            days = [
                s
                for s in state.stats.get(domain, [])
                if start <= dt.datetime.strptime(s["name"][-8:], "%Y%m%d").date() < end
            ]
            # newest first, as a list API may well answer; the collector must not rely on order
            days.sort(key=lambda s: s["name"], reverse=True)
            self._page(days, query, "trafficStats")

        def _page(self, items: list[dict[str, Any]], query: dict[str, str], key: str) -> None:
            start = int(query.get("pageToken", "0") or "0")
            size = min(int(query.get("pageSize", PAGE)), PAGE)
            payload: dict[str, Any] = {key: items[start : start + size]}
            if start + size < len(items):
                payload["nextPageToken"] = str(start + size)
            if not payload[key]:
                payload = {}  # Google leaves empty lists out
            self._send(*_json(200, payload))

        def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextmanager
def google_server(state: GoogleState) -> Iterator[str]:
    """A running server; yields its base URL (``http://127.0.0.1:PORT``)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
