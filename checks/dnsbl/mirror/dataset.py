"""Reading mirror files: rbldnsd datasets and network feeds, judged usable or not.

:func:`load` (paths) and :func:`parse` (bytes) return a :class:`Mirror` or raise
:class:`UnusableMirror`. Several files make one dataset, as in rbldnsd's
``zone:type:file1,file2``. A file may be gzip-compressed (rbldnsd reads those too).

Malformed lines are counted and skipped, as rbldnsd does; but a file is refused whole when
it cannot be what it claims or cannot be complete:

* it is empty, binary, or a gzip stream that breaks off;
* it lists nothing (``allow_empty`` to accept a list that is empty on purpose);
* more than ``max_malformed`` of its entry lines are malformed (an HTML error page, a
  file of another format);
* its last line has no newline — a copy cut short, which rbldnsd would read as a shorter
  address, ``10.20.3`` for ``10.20.30.40`` (``allow_unterminated`` to accept);
* its ``$TIMESTAMP`` is in the future (rbldnsd refuses it too) or its expiry has passed;
* a drop-json file lacks its closing metadata line, or its record count does not match.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gzip
import os
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from checks.dnsbl.mirror.feeds import FEED_FORMATS, FeedReader, Truncated
from checks.dnsbl.mirror.mirror import LoadReport, Mirror, UnusableMirror
from checks.dnsbl.mirror.rbldnsd import FORMATS as RBLDNSD_FORMATS
from checks.dnsbl.mirror.rbldnsd import DatasetReader

FORMATS = (*RBLDNSD_FORMATS, *FEED_FORMATS)
_GZIP_MAGIC = b"\x1f\x8b"


def _return_freed_memory() -> None:
    """Hand the load's freed temporaries back to the OS (glibc keeps them otherwise).

    A big load allocates several hundred MiB of short-lived arrays; glibc's heap keeps that
    memory mapped after numpy frees it, so a daemon that reloads mirrors would sit on it.
    Nothing happens where there is no glibc.
    """
    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


def _content(data: bytes, name: str, allow_unterminated: bool) -> bytes:
    """The file's text, uncompressed; raises UnusableMirror for what cannot be a dataset."""
    if data.startswith(_GZIP_MAGIC):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise UnusableMirror(f"{name}: broken or truncated gzip data ({exc})") from None
    if not data:
        raise UnusableMirror(f"{name}: empty file")
    if b"\x00" in data:
        raise UnusableMirror(f"{name}: binary data, not a text dataset")
    if not data.endswith(b"\n") and not allow_unterminated:
        raise UnusableMirror(f"{name}: the last line has no newline: truncated copy?")
    return data


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """How strictly to read: see :func:`parse`."""

    accept_in_cidr: bool = False
    allow_empty: bool = False
    allow_unterminated: bool = False
    max_malformed: float = 0.5
    now: float | None = None
    code: str | None = None
    txt: str | None = None


def parse(
    data: bytes | Iterable[bytes],
    format: str,
    *,
    names: Sequence[str] | None = None,
    accept_in_cidr: bool = False,
    allow_empty: bool = False,
    allow_unterminated: bool = False,
    max_malformed: float = 0.5,
    now: float | None = None,
    code: str | None = None,
    txt: str | None = None,
) -> Mirror:
    """A :class:`Mirror` from file contents (one ``bytes``, or several forming one dataset).

    ``format`` is one of :data:`FORMATS`; ``names`` name the files in messages.
    ``accept_in_cidr`` is rbldnsd's ``-e`` (mask ``1.2.3.4/24`` instead of refusing it).
    ``max_malformed`` is the share of malformed entry lines that makes a file unusable;
    ``now`` (Unix time) judges ``$TIMESTAMP``. ``code`` and ``txt`` set the answer of
    cidr-list and drop-json entries (defaults 127.0.0.2 / no TXT and 127.0.0.9 / the SBL
    id; in drop-json ``{sblid}`` in ``txt`` is the record's id); rbldnsd datasets carry their
    own. Raises :class:`UnusableMirror`.
    """
    opts = ReadOptions(
        accept_in_cidr, allow_empty, allow_unterminated, max_malformed, now, code, txt
    )
    files = [data] if isinstance(data, bytes | bytearray) else data
    return _read(files, format, list(names) if names is not None else None, opts)


def load(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    format: str,
    *,
    accept_in_cidr: bool = False,
    allow_empty: bool = False,
    allow_unterminated: bool = False,
    max_malformed: float = 0.5,
    now: float | None = None,
    code: str | None = None,
    txt: str | None = None,
) -> Mirror:
    """:func:`parse` on files read from disk (one path, or several forming one dataset).

    Each file is read only when its turn comes and dropped once parsed, so a big dataset
    is not held twice.
    """
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    opts = ReadOptions(
        accept_in_cidr, allow_empty, allow_unterminated, max_malformed, now, code, txt
    )
    return _read((_read_file(p) for p in items), format, [str(p) for p in items], opts)


def _read_file(path: str | os.PathLike[str]) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UnusableMirror(f"{path}: cannot read: {exc.strerror or exc}") from None


def _read(
    files: Iterable[bytes], format: str, names: list[str] | None, opts: ReadOptions
) -> Mirror:
    if format not in FORMATS:
        raise ValueError(f"unknown mirror format {format!r} (one of {', '.join(FORMATS)})")
    now = time.time() if opts.now is None else opts.now
    reader: DatasetReader | FeedReader
    if format in FEED_FORMATS:
        reader = FeedReader(format, opts.code, opts.txt)
    else:
        reader = DatasetReader(format, opts.accept_in_cidr)
    count = 0
    for count, raw in enumerate(files, 1):
        name = names[count - 1] if names else f"<{format} data {count}>"
        content = _content(bytes(raw), name, opts.allow_unterminated)
        del raw
        try:
            reader.read(content, name)
        except Truncated as exc:
            raise UnusableMirror(str(exc)) from None
        del content
    if not count:
        raise UnusableMirror(f"no {format} file given")
    label = names[0] if names else f"<{format} data>"
    if count > 1:
        label = f"{label} (+{count - 1} files)"
    stamp, expires = reader.timestamp, getattr(reader, "expires", None)
    if stamp is not None and format in RBLDNSD_FORMATS and stamp > now:
        raise UnusableMirror(f"{label}: $TIMESTAMP is in the future (rbldnsd refuses it too)")
    if expires is not None and expires < now:
        raise UnusableMirror(f"{label}: the data expired ($TIMESTAMP)")
    if reader.malformed > opts.max_malformed * (reader.entries + reader.malformed):
        raise UnusableMirror(
            f"{label}: {reader.malformed} of {reader.entries + reader.malformed} entry lines "
            f"are malformed: not a {format} file? First: {'; '.join(reader.problems[:3])}"
        )
    if not reader.entries and not opts.allow_empty:
        raise UnusableMirror(f"{label}: no entries in {reader.lines} lines")
    names_set = None
    if isinstance(reader, FeedReader):
        ip4, ip6 = reader.tables()
        exclusions = duplicates = 0
    else:
        ip4, ip6, names_set = reader.tables()
        exclusions, duplicates = reader.exclusions, reader.duplicates
    if names_set is not None:
        intervals = len(names_set)
    else:
        intervals = sum(len(t) for t in (ip4, ip6) if t is not None)
    report = LoadReport(
        format=format,
        lines=reader.lines,
        entries=reader.entries,
        exclusions=exclusions,
        malformed=reader.malformed,
        duplicates=duplicates,
        problems=tuple(reader.problems),
        intervals=intervals,
        addresses4=ip4.addresses() if ip4 is not None else 0,
        addresses6=ip6.addresses() if ip6 is not None else 0,
        timestamp=stamp,
        expires=expires,
    )
    mirror = Mirror(format, reader.values, report, ip4, ip6, names_set)
    del reader
    _return_freed_memory()
    return mirror
