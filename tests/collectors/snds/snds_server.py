"""A loopback stand-in for SNDS automated access: ``data.aspx`` and ``ipStatus.aspx``.

It serves the exports as SNDS does (headerless CSV, CRLF), answers a wrong key with an HTML
sign-in page and status 200 (as SNDS does), and can be told to answer the next requests of a
page with anything else (401, a redirect, 503 ...).
"""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOGIN_PAGE = (
    b"<!DOCTYPE html>\r\n<html><head><title>Sign in to your Microsoft account</title></head>"
    b'<body><form method="post" action="/login">Sign in</form></body></html>\r\n'
)

Answer = tuple[int, dict[str, str], bytes]


@dataclass
class SndsState:
    key: str
    #: MMDDYY -> the data export of that day; a day not here is served empty (not yet there)
    days: dict[str, bytes] = field(default_factory=dict)
    ip_status: bytes = b""
    #: page -> answers to give, first to last, before the normal behaviour resumes
    queued: dict[str, list[Answer]] = field(default_factory=dict)
    #: every request's path and query, as received
    seen: list[str] = field(default_factory=list)


def _handler(state: SndsState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        #: one write per response: header and body apart meet delayed ACKs on loopback
        wbufsize = -1

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            state.seen.append(self.path)
            url = urllib.parse.urlsplit(self.path)
            page = url.path.rsplit("/", 1)[-1]
            query = urllib.parse.parse_qs(url.query)
            if state.queued.get(page):
                self._send(*state.queued[page].pop(0))
            elif query.get("key") != [state.key]:
                self._send(200, {"Content-Type": "text/html; charset=utf-8"}, LOGIN_PAGE)
            elif page == "data.aspx":
                body = state.days.get(query.get("date", [""])[0], b"")
                self._send(200, {"Content-Type": "text/csv"}, body)
            elif page == "ipStatus.aspx":
                self._send(200, {"Content-Type": "text/csv"}, state.ip_status)
            else:
                self._send(404, {"Content-Type": "text/plain"}, b"not found")

        def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # the request line carries the key; keep it off the test output

    return Handler


@contextmanager
def snds_server(state: SndsState) -> Iterator[str]:
    """A running server; yields its base URL (``http://127.0.0.1:PORT/snds``)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/snds"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
