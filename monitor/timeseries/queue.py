"""The on-disk queue in front of InfluxDB: append-only segment files, fsynced, bounded.

Every batch is appended to the open segment (``<seq>.lp`` in the buffer dir,
one point per line) and fsynced before :meth:`SegmentQueue.append` returns; a
segment is sealed once it holds ``batch_size`` points. Delivery takes the
oldest segment, sends it, and deletes it after a 2xx, so points leave in the
order they were written and survive a crash or a restart of either side.

The bound (``buffer_max_bytes``) drops the **oldest** points: when a new
batch would not fit, whole segments are deleted from the head of the queue
(never the one being sent) and an ERROR names how many points were dropped and
their time range. The newest data is what the dashboards and cases need first;
an outage longer than the buffer loses its beginning, not its end. A single
batch larger than the whole bound is refused (ERROR, same details).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from checks.errors import UsageError
from monitor.timeseries.line import line_timestamp

log = logging.getLogger(__name__)

SUFFIX = ".lp"


class BufferBusy(UsageError):
    """Another writer (in this or another process) holds the buffer dir: give each its own."""


@dataclass
class Segment:
    """One file of the queue: ``points`` lines, ``size`` bytes, timestamps first..last (ns)."""

    seq: int
    path: Path
    points: int = 0
    size: int = 0
    first_ns: int | None = None
    last_ns: int | None = None

    def note(self, lines: list[str], size: int) -> None:
        self.points += len(lines)
        self.size += size
        for text in lines:
            ts = line_timestamp(text)
            if ts is not None:
                self.first_ns = ts if self.first_ns is None else min(self.first_ns, ts)
                self.last_ns = ts if self.last_ns is None else max(self.last_ns, ts)


def _iso(ns: int | None) -> str:
    if ns is None:
        return "?"
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).isoformat(timespec="seconds")


def describe(points: int, first_ns: int | None, last_ns: int | None) -> str:
    return f"{points} points from {_iso(first_ns)} to {_iso(last_ns)}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SegmentQueue:
    """A FIFO of line-protocol points on disk, safe to use from several threads."""

    def __init__(self, directory: str | Path, batch_size: int, max_bytes: int) -> None:
        self.directory = Path(directory)
        self.quarantine_dir = self.directory / "quarantine"
        self.batch_size = batch_size
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._segments: list[Segment] = []
        self._open: Segment | None = None  # the segment appends go to; sealed when full
        self._in_flight: int | None = None  # seq of the segment being delivered
        self.directory.mkdir(parents=True, exist_ok=True)
        # two writers on one dir would reuse sequence numbers and delete each other's segments
        self._lock_file = (self.directory / "lock").open("a")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            self._lock_file.close()
            raise BufferBusy(
                f"influx buffer {self.directory} is in use by another writer; "
                "give each process its own buffer dir"
            ) from e
        self._recover()

    def close(self) -> None:
        """Release the buffer dir (the segments stay for the next writer)."""
        if not self._lock_file.closed:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()

    def _recover(self) -> None:
        """Index the segments left by an earlier run; cut a torn last line (never acknowledged)."""
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            try:
                seq = int(path.stem)
            except ValueError:
                continue
            data = path.read_bytes()
            if data and not data.endswith(b"\n"):
                data = data[: data.rfind(b"\n") + 1]
                with path.open("r+b") as f:
                    f.truncate(len(data))
                    os.fsync(f.fileno())
                log.warning("influx buffer: cut a torn last line from %s", path.name)
            if not data:
                path.unlink()
                continue
            seg = Segment(seq, path)
            seg.note(data.decode("utf-8", errors="replace").splitlines(), len(data))
            self._segments.append(seg)

    # -- state ---------------------------------------------------------------------------

    def pending(self) -> int:
        """Points on disk waiting for delivery."""
        with self._lock:
            return sum(s.points for s in self._segments)

    def size(self) -> int:
        """Bytes on disk waiting for delivery."""
        with self._lock:
            return sum(s.size for s in self._segments)

    # -- writing -------------------------------------------------------------------------

    def append(self, lines: list[str]) -> int:
        """Append ``lines`` durably (fsynced); returns how many were kept.

        Fewer than ``len(lines)`` only when the batch alone is larger than the
        bound (it is then refused whole, and 0 comes back).
        """
        if not lines:
            return 0
        with self._lock:
            start = 0
            while start < len(lines):
                seg = self._open_segment()
                room = self.batch_size - seg.points
                chunk = lines[start : start + room]
                data = ("\n".join(chunk) + "\n").encode()
                if not self._make_room(len(data)):
                    refused = Segment(-1, self.directory)
                    refused.note(lines[start:], 0)
                    why = (
                        "larger than the bound"
                        if len(data) > self.max_bytes
                        else "that does not fit beside the segment being sent"
                    )
                    log.error(
                        "influx buffer full (%d bytes): refused a batch %s: %s",
                        self.max_bytes,
                        why,
                        describe(refused.points, refused.first_ns, refused.last_ns),
                    )
                    return start
                seg = self._open_segment()  # _make_room may have dropped the open one
                with seg.path.open("ab") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                seg.note(chunk, len(data))
                if seg.points >= self.batch_size:
                    self._open = None
                start += len(chunk)
            return len(lines)

    def _open_segment(self) -> Segment:
        if self._open is None:
            seq = self._segments[-1].seq + 1 if self._segments else 1
            seg = Segment(seq, self.directory / f"{seq:020d}{SUFFIX}")
            seg.path.touch()
            _fsync_dir(self.directory)
            self._segments.append(seg)
            self._open = seg
        return self._open

    def _make_room(self, needed: int) -> bool:
        """Drop oldest segments until ``needed`` more bytes fit; False if they never can."""
        total = sum(s.size for s in self._segments)
        if total + needed <= self.max_bytes:
            return True
        if needed > self.max_bytes:
            return False
        dropped: list[Segment] = []
        for seg in list(self._segments):
            if total + needed <= self.max_bytes:
                break
            if seg.seq == self._in_flight or seg.size == 0:
                continue
            self._segments.remove(seg)
            seg.path.unlink(missing_ok=True)
            if seg is self._open:
                self._open = None
            total -= seg.size
            dropped.append(seg)
        if dropped:
            firsts = [s.first_ns for s in dropped if s.first_ns is not None]
            lasts = [s.last_ns for s in dropped if s.last_ns is not None]
            log.error(
                "influx buffer full (%d bytes): dropped the oldest %s",
                self.max_bytes,
                describe(
                    sum(s.points for s in dropped),
                    min(firsts) if firsts else None,
                    max(lasts) if lasts else None,
                ),
            )
        return total + needed <= self.max_bytes

    # -- delivery ------------------------------------------------------------------------

    def head(self) -> tuple[Segment, bytes] | None:
        """The oldest segment and its bytes, marked in flight; ``None`` when the queue is empty.

        The open segment is sealed first, so everything written before the call
        is delivered by it.
        """
        with self._lock:
            segs = [s for s in self._segments if s.points]
            if not segs:
                return None
            seg = segs[0]
            if seg is self._open:
                # sealed now: a point appended while it is in flight would be deleted unsent
                self._open = None
            self._in_flight = seg.seq
            return seg, seg.path.read_bytes()

    def delivered(self, seg: Segment) -> None:
        """The server took ``seg``: delete it."""
        with self._lock:
            self._forget(seg)
            seg.path.unlink(missing_ok=True)

    def quarantine(self, seg: Segment, reason: str) -> Path:
        """Move ``seg`` aside (``quarantine/<seq>.lp`` + ``.reason``); the queue goes on."""
        with self._lock:
            self.quarantine_dir.mkdir(exist_ok=True)
            target = self.quarantine_dir / f"{seg.seq:020d}-{os.getpid()}{SUFFIX}"
            os.replace(seg.path, target)
            target.with_suffix(".reason").write_text(reason + "\n")
            self._forget(seg)
            return target

    def release(self, seg: Segment) -> None:
        """Delivery of ``seg`` failed for now: it stays at the head of the queue."""
        with self._lock:
            self._in_flight = None

    def _forget(self, seg: Segment) -> None:
        if seg in self._segments:
            self._segments.remove(seg)
        if seg is self._open:
            self._open = None
        self._in_flight = None
