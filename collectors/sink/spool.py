"""The durable spool: every message the sink accepted, on disk before the SMTP reply says 250.

Layout of the spool directory::

    tmp/          being written; anything left here after a crash was never acknowledged
    new/          accepted, waiting for the processor: <hash>.eml and its <hash>.json envelope
    done/         processed (kept as evidence; a retention job may delete old files)
    quarantine/   could not be processed: <hash>.eml, <hash>.json and <hash>.reason

A message is named by the SHA-256 of its raw bytes, so a re-delivery of the same bytes (a
client that lost our 250 and sent again) is the same file, and the store's hash check makes
processing it a second time a no-op.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SUBDIRS = ("tmp", "new", "done", "quarantine")


class SpoolError(OSError):
    """The spool cannot be written (full disk, permissions, I/O error): answer 451, try later."""


@dataclass(frozen=True)
class SpooledMessage:
    """One accepted message: where its bytes are and what the SMTP envelope said."""

    path: Path
    message_hash: str
    received_at: dt.datetime
    envelope: dict[str, object] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class StagedMessage:
    """A message written and fsynced under ``tmp/``, not yet in ``new/`` (not acknowledged).

    ``tmp_eml`` and ``tmp_json`` are None when the same bytes were already waiting in
    ``new/``: nothing to move, only the group's directory fsync.
    """

    message: SpooledMessage
    tmp_eml: Path | None
    tmp_json: Path | None


def _remove(*paths: Path | None) -> None:
    for path in paths:
        if path is not None:
            path.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


class Spool:
    """A spool directory; creates its sub-directories on construction.

    Methods are blocking (file I/O and fsync): call them from a thread in async code.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        for name in SUBDIRS:
            (self.directory / name).mkdir(parents=True, exist_ok=True)
        self.tmp = self.directory / "tmp"
        self.new = self.directory / "new"
        self.done_dir = self.directory / "done"
        self.quarantine_dir = self.directory / "quarantine"

    # -- intake -------------------------------------------------------------------------

    def accept(self, raw: bytes, envelope: Mapping[str, object]) -> SpooledMessage:
        """Store ``raw`` durably in ``new/`` and return it.

        When this returns, the message and its envelope are fsynced and their names are
        fsynced into ``new/``: a crash from now on cannot lose them. If the same bytes are
        already waiting in ``new/``, that message is returned and nothing is written.
        Raises :class:`SpoolError` when anything cannot be written; nothing is then in
        ``new/`` and the sender must be told to try later.
        """
        result = self.publish([self.stage(raw, envelope)])[0]
        if isinstance(result, SpoolError):
            raise result
        return result

    def accept_many(
        self, messages: Sequence[tuple[bytes, Mapping[str, object]]]
    ) -> list[SpooledMessage | SpoolError]:
        """:meth:`accept` for a group of (raw, envelope): each message and envelope written
        and fsynced, then all moved into ``new/`` and the directory fsynced once.

        Returns one entry per message, in order, as :meth:`publish` does: the durable
        message, or the :class:`SpoolError` that kept it out (its sender gets 451).
        """
        staged: list[StagedMessage] = []
        failed: dict[int, SpoolError] = {}
        for i, (raw, envelope) in enumerate(messages):
            try:
                staged.append(self.stage(raw, envelope))
            except SpoolError as exc:
                failed[i] = exc
        published = iter(self.publish(staged))
        return [failed[i] if i in failed else next(published) for i in range(len(messages))]

    def stage(self, raw: bytes, envelope: Mapping[str, object]) -> StagedMessage:
        """First half of :meth:`accept`: write the message and its envelope under ``tmp/``,
        each fsynced. Not acknowledged yet: :meth:`publish` makes it durable in ``new/``.

        Raises :class:`SpoolError` (nothing left behind) when the files cannot be written.
        """
        digest = hashlib.sha256(raw).hexdigest()
        final = self.new / f"{digest}.eml"
        if final.exists():
            try:
                return StagedMessage(self._load(final), None, None)
            except FileNotFoundError:
                pass  # the processor just moved it to done/: spool it again (a no-op later)
        received_at = dt.datetime.now(dt.UTC)
        meta = dict(envelope) | {"received_at": received_at.isoformat()}
        unique = uuid.uuid4().hex
        tmp_eml = self.tmp / f"{digest}.{unique}.eml"
        tmp_json = self.tmp / f"{digest}.{unique}.json"
        try:
            _write_synced(tmp_eml, raw)
            _write_synced(tmp_json, json.dumps(meta, default=str).encode())
        except OSError as exc:
            _remove(tmp_eml, tmp_json)
            raise SpoolError(exc.errno, f"spool write failed: {exc.strerror or exc}") from exc
        return StagedMessage(SpooledMessage(final, digest, received_at, meta), tmp_eml, tmp_json)

    def publish(self, staged: Sequence[StagedMessage]) -> list[SpooledMessage | SpoolError]:
        """Second half of :meth:`accept`, for a group: move each staged message into
        ``new/``, then fsync ``new/`` **once** for the whole group (group commit).

        Returns one entry per message, in order: the message, durable in ``new/`` (only
        now may its sender get a 250), or the :class:`SpoolError` that stopped it (answer
        451). When the directory fsync fails, every message of the group gets the error;
        any of them already renamed may still be processed, and the sender's retry of the
        same bytes is then a no-op in the store.
        """
        results: list[SpooledMessage | SpoolError] = []
        for item in staged:
            if item.tmp_eml is None or item.tmp_json is None:
                results.append(item.message)  # already in new/; the fsync below covers it
                continue
            try:
                # The envelope goes first: pending() only sees a message once its .eml is
                # in new/, and by then its .json is already there.
                os.replace(item.tmp_json, self.new / f"{item.message.message_hash}.json")
                os.replace(item.tmp_eml, item.message.path)
            except OSError as exc:
                _remove(item.tmp_eml, item.tmp_json)
                results.append(SpoolError(exc.errno, f"spool write failed: {exc.strerror or exc}"))
                continue
            results.append(item.message)
        try:
            _fsync_dir(self.new)
        except OSError as exc:
            error = SpoolError(exc.errno, f"spool write failed: {exc.strerror or exc}")
            return [error for _ in results]
        return results

    # -- what the processor reads -------------------------------------------------------

    def pending(self, limit: int | None = None) -> list[SpooledMessage]:
        """Messages waiting in ``new/``, oldest first (by write time, then name).

        With ``limit``, only the oldest ``limit`` of them (their envelopes are read, the
        others' are not).
        """
        entries: list[tuple[int, str, Path]] = []
        with os.scandir(self.new) as it:
            for entry in it:
                if not entry.name.endswith(".eml"):
                    continue
                try:
                    mtime = entry.stat().st_mtime_ns
                except FileNotFoundError:  # moved to done/ meanwhile
                    continue
                entries.append((mtime, entry.name, Path(entry.path)))
        entries.sort()
        out = []
        for _, _, path in entries[:limit]:
            try:
                out.append(self._load(path))
            except FileNotFoundError:
                continue
        return out

    def read_many(self, msgs: Sequence[SpooledMessage]) -> list[tuple[SpooledMessage, bytes]]:
        """Each of ``msgs`` with its bytes; one that has left ``new/`` meanwhile is skipped.

        Other read errors (OSError) propagate.
        """
        out = []
        for msg in msgs:
            try:
                out.append((msg, self.read(msg)))
            except FileNotFoundError:
                continue  # already moved (a re-delivery raced with its first copy)
        return out

    def read(self, msg: SpooledMessage) -> bytes:
        """The raw bytes of ``msg`` as the sender sent them (after SMTP dot-unstuffing)."""
        return msg.path.read_bytes()

    def depth(self) -> int:
        """How many messages wait in ``new/``."""
        with os.scandir(self.new) as it:
            return sum(1 for e in it if e.name.endswith(".eml"))

    # -- outcomes -----------------------------------------------------------------------

    def done(self, msg: SpooledMessage) -> None:
        """Move ``msg`` to ``done/``. Not fsynced: if a crash undoes the move, the message
        is processed again and the store's hash check makes that a no-op."""
        self._move(msg, self.done_dir)

    def quarantine(self, msg: SpooledMessage, reason: str) -> None:
        """Move ``msg`` to ``quarantine/`` with a ``<hash>.reason`` text file beside it."""
        reason_path = self.quarantine_dir / f"{msg.message_hash}.reason"
        reason_path.write_text(reason if reason.endswith("\n") else reason + "\n")
        self._move(msg, self.quarantine_dir)

    def release(self, message_hash: str) -> bool:
        """Put a quarantined message back into ``new/`` (after a parser fix).

        Returns False when no such message is in quarantine.
        """
        eml = self.quarantine_dir / f"{message_hash}.eml"
        if not eml.exists():
            return False
        sidecar = self.quarantine_dir / f"{message_hash}.json"
        if sidecar.exists():
            os.replace(sidecar, self.new / sidecar.name)
        os.replace(eml, self.new / eml.name)
        (self.quarantine_dir / f"{message_hash}.reason").unlink(missing_ok=True)
        return True

    def recover(self) -> int:
        """Clean up after a crash; returns how many stale files were removed.

        Files in ``tmp/`` were never acknowledged (the reply waits for the rename), and an
        envelope in ``new/`` without its message is the trace of a crash between the two
        renames. Call only while no other process writes to this spool.
        """
        removed = 0
        for path in self.tmp.iterdir():
            path.unlink(missing_ok=True)
            removed += 1
        for sidecar in self.new.glob("*.json"):
            if not sidecar.with_suffix(".eml").exists():
                sidecar.unlink(missing_ok=True)
                removed += 1
        return removed

    # -- internals ----------------------------------------------------------------------

    def _move(self, msg: SpooledMessage, target: Path) -> None:
        sidecar = msg.path.with_suffix(".json")
        # The message first: once it has left new/, pending() no longer offers it.
        os.replace(msg.path, target / msg.path.name)
        if sidecar.exists():
            os.replace(sidecar, target / sidecar.name)

    def _load(self, path: Path) -> SpooledMessage:
        digest = path.stem
        envelope: dict[str, object] = {}
        try:
            envelope = json.loads(path.with_suffix(".json").read_bytes())
        except (FileNotFoundError, ValueError):
            envelope = {}
        received_at = _parse_time(envelope.get("received_at"))
        if received_at is None:
            received_at = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
        return SpooledMessage(path, digest, received_at, envelope)


def _parse_time(value: object) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)
