"""The durable spool: every message the sink accepted, on disk before the SMTP reply says 250.

Layout of the spool directory::

    tmp/          segments being written; anything left here after a crash was never
                  acknowledged (removed at start-up)
    new/          accepted, waiting for the processor: segments, each holding the messages
                  of one group commit (see :mod:`collectors.sink.segment`)
    done/         settled segments, moved whole from new/ once every message in them is
                  stored or quarantined; kept as evidence (a retention job may delete them)
    quarantine/   could not be processed: <hash>.eml, <hash>.json and <hash>.reason

A segment is written under ``tmp/``, fsynced, renamed into ``new/`` and ``new/`` fsynced:
one file, one fsync and one directory fsync for a whole group of messages. It moves to
``done/`` once every message in it is settled (stored, or copied to ``quarantine/``).

A message is named by the SHA-256 of its raw bytes, so a re-delivery of the same bytes (a
client that lost our 250 and sent again) has the same name, and the store's hash check
makes processing it a second time a no-op.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from checks.errors import SpoolError
from collectors.sink.segment import (
    SUFFIX,
    Record,
    TornSegment,
    encode_parts,
    parse_name,
    read_segment,
    segment_name,
)

log = logging.getLogger("repmon.sink")

SUBDIRS = ("tmp", "new", "done", "quarantine")
#: messages the spool remembers as waiting, for answering a resent copy without writing it
#: again (~300 bytes each, never the message bytes); past this the oldest are forgotten
#: and a resent copy is written and skipped later (the processor's listing, the store)
MAX_REMEMBERED = 65536
#: buffers per writev call (Linux's IOV_MAX is 1024)
_IOV_MAX = 1024


@dataclass(frozen=True)
class SpooledMessage:
    """One accepted message: the segment that holds it and what the SMTP envelope said.

    ``index`` is its place in the segment; ``data`` its bytes when they were read already.
    """

    path: Path
    message_hash: str
    received_at: dt.datetime
    envelope: dict[str, object] = field(default_factory=dict, compare=False)
    index: int = field(default=0, compare=False)
    data: bytes | None = field(default=None, compare=False, repr=False)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes | Sequence[bytes], *, sync: bool) -> None:
    """Write ``data`` (bytes, or pieces written one after another with ``writev``, never
    joined into a copy) to a new file ``path``."""
    pieces = [data] if isinstance(data, bytes) else list(data)
    views = [memoryview(p) for p in pieces if p]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        first = 0
        while first < len(views):
            written = os.writev(fd, views[first : first + _IOV_MAX])
            while written and first < len(views):
                size = len(views[first])
                if written >= size:
                    written -= size
                    first += 1
                else:
                    views[first] = views[first][written:]
                    written = 0
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def _spool_error(exc: OSError) -> SpoolError:
    return SpoolError(exc.errno, f"spool write failed: {exc.strerror or exc}")


class Spool:
    """A spool directory; creates its sub-directories on construction.

    Methods are blocking (file I/O and fsync): call them from a thread in async code. One
    instance may be used from several threads (the writer and the processor).
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        for name in SUBDIRS:
            (self.directory / name).mkdir(parents=True, exist_ok=True)
        self.tmp = self.directory / "tmp"
        self.new = self.directory / "new"
        self.done_dir = self.directory / "done"
        self.quarantine_dir = self.directory / "quarantine"
        self._lock = threading.Lock()
        self._serial = itertools.count()
        #: messages in new/ this instance wrote or listed and has not settled, by hash:
        #: a second copy of the same bytes is then not written again. Without their bytes
        #: (a backlog while the store is down would otherwise all sit in memory) and at most
        #: MAX_REMEMBERED of them.
        self._waiting: dict[str, SpooledMessage] = {}
        #: per segment name, the indexes of its records already settled
        self._settled: dict[str, set[int]] = {}
        #: per segment name, how many records it really holds when that is fewer than its
        #: name says (a torn tail)
        self._valid: dict[str, int] = {}

    # -- intake -------------------------------------------------------------------------

    def accept(self, raw: bytes, envelope: Mapping[str, object]) -> SpooledMessage:
        """Store ``raw`` durably in ``new/`` and return it.

        When this returns, the message and its envelope are in a segment that is fsynced
        and whose name is fsynced into ``new/``: a crash from now on cannot lose them. If
        the same bytes are already waiting, that message is returned (without its bytes and
        envelope) and nothing is written. Raises :class:`SpoolError` when anything cannot
        be written; nothing is then in ``new/`` and the sender must be told to try later.
        """
        result = self.accept_many([(raw, envelope)])[0]
        if isinstance(result, SpoolError):
            raise result
        return result

    def accept_many(
        self, messages: Sequence[tuple[bytes, Mapping[str, object]]]
    ) -> list[SpooledMessage | SpoolError]:
        """:meth:`accept` for a group of (raw, envelope): all written into **one** new
        segment, which is fsynced, renamed into ``new/``, and ``new/`` fsynced once.

        Returns one entry per message, in order: the durable message (only now may its
        sender get a 250), or the :class:`SpoolError` that kept it out (answer 451). The
        group succeeds or fails as a whole. When the final directory fsync fails, every
        message gets the error although the segment may survive: it is then processed,
        and the sender's retry of the same bytes is a no-op in the store.
        """
        received_at = dt.datetime.now(dt.UTC)
        stamp = received_at.isoformat()
        entries: list[tuple[str, dict[str, object], bytes]] = []
        # per message: the hash of its new record, or the message already waiting
        slots: list[str | SpooledMessage] = []
        with self._lock:
            fresh: set[str] = set()
            for raw, envelope in messages:
                digest = hashlib.sha256(raw).hexdigest()
                known = self._waiting.get(digest)
                if known is not None:
                    slots.append(known)
                    continue
                if digest not in fresh:
                    fresh.add(digest)
                    entries.append((digest, {"received_at": stamp} | dict(envelope), raw))
                slots.append(digest)
        if not entries:
            return [s for s in slots if isinstance(s, SpooledMessage)]
        # The name's time prefix orders segments oldest first, across processes too.
        name = segment_name(time.time_ns(), os.getpid(), next(self._serial), len(entries))
        path, tmp = self.new / name, self.tmp / name
        try:
            parts = [p for d, meta, raw in entries for p in encode_parts(d, meta, raw)]
            _write_file(tmp, parts, sync=True)
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            error = _spool_error(exc)
            return [error if isinstance(s, str) else s for s in slots]
        try:
            _fsync_dir(self.new)
        except OSError as exc:
            return [_spool_error(exc) for _ in slots]
        made = {
            digest: SpooledMessage(path, digest, received_at, meta, i, raw)
            for i, (digest, meta, raw) in enumerate(entries)
        }
        with self._lock:
            for msg in made.values():
                self._remember(msg)
        return [made[s] if isinstance(s, str) else s for s in slots]

    # -- what the processor reads -------------------------------------------------------

    def pending(
        self, limit: int | None = None, max_bytes: int | None = None
    ) -> list[SpooledMessage]:
        """Messages waiting in ``new/``, oldest first (segment order, then record order),
        with their bytes; at most ``limit`` of them and, when ``max_bytes`` is given, at
        most that many message bytes in all (but always the first message, however large).
        Segments are read one at a time, so the listing holds at most one segment's bytes
        besides the messages it returns.

        A second copy of bytes already listed is not listed again (the first copy's
        outcome settles it). A segment that cannot be read is skipped with an error in
        the log; a torn last record (a crash mid-write, never acknowledged) is ignored.
        """
        out: list[SpooledMessage] = []
        seen: set[str] = set()
        size = 0
        full = False
        for name in self._segment_names():
            if full or (limit is not None and len(out) >= limit):
                break
            path = self.new / name
            try:
                records = self._read(path)
            except FileNotFoundError:
                continue  # settled and deleted meanwhile
            except OSError as exc:
                log.error("spool: cannot read segment %s: %s", path, exc)
                continue
            with self._lock:
                settled = self._settled.setdefault(name, set())
                for i, record in enumerate(records):
                    if i in settled:
                        continue
                    if record.message_hash in seen:
                        settled.add(i)  # the copy listed first decides for both
                        continue
                    if limit is not None and len(out) >= limit:
                        break
                    if max_bytes is not None and out and size + len(record.raw) > max_bytes:
                        full = True
                        break
                    seen.add(record.message_hash)
                    msg = _message(path, i, record)
                    if record.message_hash not in self._waiting:
                        self._remember(msg)
                    out.append(msg)
                    size += len(record.raw)
                finished = len(settled) >= len(records)
            if finished:
                self._drop(path)
        return out

    def read_many(self, msgs: Sequence[SpooledMessage]) -> list[tuple[SpooledMessage, bytes]]:
        """Each of ``msgs`` with its bytes; one whose segment is gone is skipped.

        Other read errors (OSError) propagate.
        """
        out = []
        for msg in msgs:
            try:
                out.append((msg, self.read(msg)))
            except FileNotFoundError:
                continue
        return out

    def read(self, msg: SpooledMessage) -> bytes:
        """The raw bytes of ``msg`` as the sender sent them (after SMTP dot-unstuffing)."""
        if msg.data is not None:
            return msg.data
        records = self._read(msg.path)
        if msg.index >= len(records):
            raise FileNotFoundError(f"{msg.path}: no record {msg.index}")
        return records[msg.index].raw

    def depth(self) -> int:
        """How many messages wait in ``new/`` (read from the segments' names)."""
        total = 0
        for name in self._segment_names():
            count = self._valid.get(name)
            if count is None:
                count = parse_name(name)
            total += max(count - len(self._settled.get(name, ())), 0)
        return total

    # -- outcomes -----------------------------------------------------------------------

    def done(self, msg: SpooledMessage) -> None:
        """Settle ``msg`` (its events are in the store); its segment moves to ``done/``
        once all of its messages are settled.

        Nothing is written per message: a file created per message cost more CPU than
        parsing it. Not fsynced: if a crash undoes the move, the segment is processed
        again, which the store's hash check makes a no-op.
        """
        self._settle(msg)

    def quarantine(self, msg: SpooledMessage, reason: str) -> None:
        """Write ``msg`` to ``quarantine/`` with a ``<hash>.reason`` text file beside it,
        fsynced (the store has nothing of it), then settle it."""
        reason_path = self.quarantine_dir / f"{msg.message_hash}.reason"
        _write_file(
            reason_path, (reason if reason.endswith("\n") else reason + "\n").encode(), sync=True
        )
        raw = self.read(msg)
        meta = json.dumps(msg.envelope, default=str).encode()
        _write_file(self.quarantine_dir / f"{msg.message_hash}.json", meta, sync=True)
        _write_file(self.quarantine_dir / f"{msg.message_hash}.eml", raw, sync=True)
        _fsync_dir(self.quarantine_dir)
        self._settle(msg)

    def release(self, message_hash: str) -> bool:
        """Put a quarantined message back into ``new/`` (after a parser fix), with its
        original envelope, durably; then remove it from quarantine.

        Returns False when no such message is in quarantine.
        """
        eml = self.quarantine_dir / f"{message_hash}.eml"
        if not eml.exists():
            return False
        sidecar = self.quarantine_dir / f"{message_hash}.json"
        try:
            envelope = json.loads(sidecar.read_bytes())
        except (FileNotFoundError, ValueError):
            envelope = {}
        self.accept(eml.read_bytes(), envelope if isinstance(envelope, dict) else {})
        for path in (eml, sidecar, self.quarantine_dir / f"{message_hash}.reason"):
            path.unlink(missing_ok=True)
        return True

    def evidence(self, message_hash: str) -> Record | None:
        """The processed message with this hash, as found in ``done/`` (bytes and SMTP
        envelope); None when no settled segment holds it (never received, still pending,
        deleted by retention) or when it sits in ``quarantine/`` (a settled segment keeps
        its quarantined messages too). Reads the segments newest first: for analysts and
        tests, not for a hot path."""
        if (self.quarantine_dir / f"{message_hash}.eml").exists():
            return None
        with os.scandir(self.done_dir) as it:
            names = sorted((e.name for e in it if e.name.endswith(SUFFIX)), reverse=True)
        for name in names:
            try:
                records = self._read(self.done_dir / name)
            except FileNotFoundError:
                continue
            for record in records:
                if record.message_hash == message_hash:
                    return record
        return None

    def recover(self) -> int:
        """Clean up after a crash; returns how many stale files were removed.

        Segments in ``tmp/`` were never acknowledged (the reply waits for the rename and
        the directory fsync). Call only while no other process writes to this spool.
        """
        removed = 0
        for path in self.tmp.iterdir():
            path.unlink(missing_ok=True)
            removed += 1
        return removed

    # -- internals ----------------------------------------------------------------------

    def _remember(self, msg: SpooledMessage) -> None:
        """Note ``msg`` as waiting, without its bytes and envelope (up to 100 recipients
        each); forget the oldest past the bound. Call with the lock held."""
        self._waiting[msg.message_hash] = replace(msg, data=None, envelope={})
        while len(self._waiting) > MAX_REMEMBERED:
            del self._waiting[next(iter(self._waiting))]

    def _segment_names(self) -> list[str]:
        with os.scandir(self.new) as it:
            return sorted(e.name for e in it if e.name.endswith(SUFFIX))

    def _read(self, path: Path) -> list[Record]:
        try:
            return read_segment(path.read_bytes())
        except TornSegment as torn:
            # Only a crash during the write leaves this, and the write was then never
            # acknowledged: the complete records stand, the torn tail is dropped.
            if self._valid.get(path.name) != len(torn.records):
                log.warning("spool: %s: dropped a torn record after %d", path, len(torn.records))
                self._valid[path.name] = len(torn.records)
            return torn.records

    def _settle(self, msg: SpooledMessage) -> None:
        name = msg.path.name
        with self._lock:
            self._waiting.pop(msg.message_hash, None)
            settled = self._settled.setdefault(name, set())
            settled.add(msg.index)
            count = self._valid.get(name)
            finished = len(settled) >= (parse_name(name) if count is None else count)
        if finished:
            self._drop(msg.path)

    def _drop(self, path: Path) -> None:
        """Move a fully settled segment to ``done/`` (not fsynced: one that a crash puts
        back in ``new/`` is processed again, a no-op)."""
        with contextlib.suppress(FileNotFoundError):  # another reader moved it already
            os.replace(path, self.done_dir / path.name)
        with self._lock:
            self._settled.pop(path.name, None)
            self._valid.pop(path.name, None)


def _message(path: Path, index: int, record: Record) -> SpooledMessage:
    received_at = _parse_time(record.envelope.get("received_at"))
    if received_at is None:
        received_at = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
    return SpooledMessage(
        path, record.message_hash, received_at, record.envelope, index, record.raw
    )


def _parse_time(value: object) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)
