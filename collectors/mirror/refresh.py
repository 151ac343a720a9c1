"""Keep blocklist zone mirrors fresh: fetch, check, swap in atomically; never use a bad copy.

For each active zone with a ``mirror_url`` (``[[dnsbl.zones]]``, or a catalogue download such
as Spamhaus DROP):

1. fetch into a temporary file in the mirror's own directory: ``rsync://`` through the
   ``rsync`` program (the current copy is the basis, so only changes travel), ``https://``
   through httpx with a conditional GET (``If-None-Match`` / ``If-Modified-Since`` from the
   last download; ``304 Not Modified`` confirms the copy is current);
2. check it with the reading library: it must load (a half-written, empty, truncated or
   unparsable file is refused, see ``docs/mirror-formats.md``) and, where the zone has test
   points, pass the RFC 5782 self-test;
3. ``os.replace`` it over the mirror (atomic: a reader sees the old file or the new one), then
   note when the copy was confirmed current and the download's validators in the state file
   beside it (``collectors.dnsbl.mirrored``).

On any failure the old file stays and the zone is reported failed. A zone without a URL
(a file kept by other means) is only judged: missing or older than ``mirror_max_age`` is a
failure too, since the blocklist sweep then answers ``unknown`` for it.
"""

from __future__ import annotations

import filecmp
import logging
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from checks.dnsbl.mirror import UnusableMirror, mirror_selftest
from collectors.config import mask_url
from collectors.dnsbl.config import DnsblConfig, MirrorSpec
from collectors.dnsbl.mirrored import (
    CACHE,
    MirrorCache,
    MirrorState,
    duration_text,
    mirror_age,
    read_mirror,
    read_state,
    url_digest,
    write_state,
)

log = logging.getLogger("repmon.mirror")

#: a download (or rsync run) taking longer than this is abandoned (seconds)
FETCH_TIMEOUT = 600.0
CONNECT_TIMEOUT = 30.0
#: a download larger than this is abandoned (the biggest public zone files are ~100s of MiB)
MAX_BYTES = 2 << 30
USER_AGENT = "repmon (blocklist mirror refresh)"

REFRESHED, UNCHANGED, NOT_DUE, FRESH, FAILED = (
    "refreshed",
    "unchanged",
    "not due",
    "fresh",
    "failed",
)


class FetchFailed(Exception):
    """The download did not give a complete file: the message says why."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one zone's mirror: ``status`` is ``refreshed`` (a new copy swapped
    in), ``unchanged`` (confirmed current), ``not due`` (fetched less than the publisher's
    minimum interval ago), ``fresh`` (no URL; the file is usable) or ``failed`` (``detail``
    says why; the old file, if any, is still in place)."""

    zone: str
    path: str
    status: str
    detail: str = ""
    #: the mirror's age after this run (seconds), None when there is no file
    age: float | None = None

    @property
    def failed(self) -> bool:
        return self.status == FAILED


def refresh_all(
    dnsbl: DnsblConfig, now: float | None = None, cache: MirrorCache | None = None
) -> list[Outcome]:
    """Refresh every active zone's mirror that has a URL, judge the others; one outcome a
    zone, in zone order."""
    return [refresh(spec, now, cache) for spec in dnsbl.mirror_specs().values()]


def refresh(
    spec: MirrorSpec, now: float | None = None, cache: MirrorCache | None = None
) -> Outcome:
    """Refresh (or, without a URL, judge) one zone's mirror; never raises for a failure."""
    now = time.time() if now is None else now
    if not spec.url:
        return _judge(spec, now)
    state = read_state(spec.path)
    exists = os.path.exists(spec.path)
    if (
        exists
        and spec.min_interval
        and state.verified_at is not None
        and state.source == url_digest(spec.url)
        and now - state.verified_at < spec.min_interval
    ):
        return Outcome(spec.label, spec.path, NOT_DUE, "", mirror_age(spec.path, now))
    try:
        outcome = _fetch_and_swap(spec, state, exists, now, cache or CACHE)
    except Exception as exc:  # any failure keeps the old copy; it is reported, never raised
        detail = str(exc) if isinstance(exc, FetchFailed | UnusableMirror) else repr(exc)
        detail = f"{detail} (from {mask_url(spec.url)}; the previous copy stays in use)"
        log.error("mirror of %s not refreshed: %s", spec.label, detail)
        return Outcome(spec.label, spec.path, FAILED, detail, mirror_age(spec.path, now))
    log.info("mirror of %s %s from %s", spec.label, outcome.status, mask_url(spec.url))
    return outcome


def _judge(spec: MirrorSpec, now: float) -> Outcome:
    age = mirror_age(spec.path, now)
    if age is None:
        return Outcome(spec.label, spec.path, FAILED, f"mirror {spec.path} is missing (no URL)")
    if age > spec.max_age:
        detail = (
            f"mirror {spec.path} is {duration_text(age)} old, older than mirror_max_age "
            f"({duration_text(spec.max_age)}); it has no mirror_url: refresh it yourself"
        )
        return Outcome(spec.label, spec.path, FAILED, detail, age)
    return Outcome(spec.label, spec.path, FRESH, "", age)


def _temporary(path: Path) -> Path:
    """A new file name beside ``path`` (same directory: ``os.replace`` stays atomic)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.part")


def _fetch_and_swap(
    spec: MirrorSpec, state: MirrorState, exists: bool, now: float, cache: MirrorCache
) -> Outcome:
    path = Path(spec.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        same_source = state.source == url_digest(spec.url)
        if spec.url.lower().startswith("rsync://"):
            validators: tuple[str | None, str | None] = (None, None)
            _rsync(spec.url, tmp, path if exists else None)
            fetched = True
        else:
            conditional = state if exists and same_source else MirrorState()
            got = _http(spec.url, tmp, conditional)
            fetched = got is not None
            validators = got if got is not None else (state.etag, state.last_modified)
        if not fetched or (exists and filecmp.cmp(tmp, path, shallow=False)):
            # 304, or the same bytes again: the copy in use is confirmed current
            write_state(path, MirrorState(now, *validators, url_digest(spec.url)))
            return Outcome(spec.label, spec.path, UNCHANGED, "", 0.0)
        mirror = read_mirror(spec, tmp)  # raises UnusableMirror: the copy is refused
        if spec.zone.selftest:
            why = mirror_selftest(mirror, spec.zone)
            if why:
                raise FetchFailed(f"the new copy fails the zone's self-test: {why}")
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
        write_state(path, MirrorState(now, *validators, url_digest(spec.url)))
        cache.put(spec, mirror)
        r = mirror.report
        detail = f"{r.entries} entries, {r.intervals} intervals, {r.malformed} malformed lines"
        return Outcome(spec.label, spec.path, REFRESHED, detail, 0.0)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _http(url: str, tmp: Path, state: MirrorState) -> tuple[str | None, str | None] | None:
    """GET ``url`` into ``tmp``; None when the server says the copy is current (304), else
    the response's (ETag, Last-Modified). Raises :class:`FetchFailed`."""
    headers = {"User-Agent": USER_AGENT}
    if state.etag:
        headers["If-None-Match"] = state.etag
    if state.last_modified:
        headers["If-Modified-Since"] = state.last_modified
    deadline = time.monotonic() + FETCH_TIMEOUT
    timeout = httpx.Timeout(CONNECT_TIMEOUT * 2, connect=CONNECT_TIMEOUT)
    try:
        with (
            httpx.Client(timeout=timeout, follow_redirects=True) as client,
            client.stream("GET", url, headers=headers) as resp,
        ):
            if url.lower().startswith("https://") and resp.url.scheme != "https":
                raise FetchFailed(f"redirected to a plain http:// URL ({mask_url(str(resp.url))})")
            if resp.status_code == 304:
                return None
            if resp.status_code != 200:
                raise FetchFailed(f"HTTP {resp.status_code} {resp.reason_phrase}")
            size = 0
            with open(tmp, "wb") as f:
                for block in resp.iter_bytes(1 << 20):
                    size += len(block)
                    if size > MAX_BYTES:
                        raise FetchFailed(f"the download is larger than {MAX_BYTES} bytes")
                    if time.monotonic() > deadline:
                        raise FetchFailed(f"the download took longer than {FETCH_TIMEOUT:g}s")
                    f.write(block)
            return resp.headers.get("ETag"), resp.headers.get("Last-Modified")
    except httpx.HTTPError as exc:
        raise FetchFailed(f"download failed: {exc.__class__.__name__}: {exc}") from None


def _rsync(url: str, tmp: Path, basis: Path | None) -> None:
    """rsync ``url`` into ``tmp`` (a copy of ``basis`` first, so that only changes travel).
    Raises :class:`FetchFailed` with rsync's own message."""
    program = shutil.which("rsync")
    if program is None:
        raise FetchFailed("the rsync program is not installed (Debian package rsync)")
    if basis is not None:
        shutil.copyfile(basis, tmp)
    cmd = [program, "--quiet", "--no-motd", f"--timeout={CONNECT_TIMEOUT * 2:.0f}"]
    cmd += [f"--contimeout={CONNECT_TIMEOUT:.0f}", url, str(tmp)]
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=FETCH_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        raise FetchFailed(f"rsync took longer than {FETCH_TIMEOUT:g}s") from None
    if done.returncode != 0:
        lines = [x for x in (done.stderr or done.stdout).splitlines() if x.strip()]
        why = lines[-1].strip() if lines else "no message"
        if lines and "@ERROR" in lines[0]:
            why = lines[0].strip()
        raise FetchFailed(f"rsync exited {done.returncode}: {mask_url(why)}")
    if not tmp.exists():
        raise FetchFailed("rsync gave no file")


def failures(outcomes: Sequence[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if o.failed]
