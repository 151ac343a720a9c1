"""Opening zip and gzip attachments without trusting what they claim about their size.

A 40 KB zip can hold 4 GB of zeros. Every member is read through :class:`Bounded`, which
counts the bytes actually produced against the archive's :class:`Budget` and raises
:class:`ParseError` once it is spent, so a bomb costs at most MAX_EXPANDED_BYTES of
inflating, and never that much memory: CSVs are parsed as they stream, and anything else
is read whole only up to a document's size. Nested archives are opened to a fixed depth.
"""

from __future__ import annotations

import gzip
import io
import zipfile
from collections.abc import Iterator
from typing import Protocol

from checks.errors import ParseError

__all__ = [
    "MAX_EXPANDED_BYTES",
    "MAX_MEMBERS",
    "Bounded",
    "Budget",
    "gunzip",
    "is_gzip",
    "is_zip",
    "zip_members",
]

#: decompressed bytes one archive may produce, all its members together (a 1 M-row
#: Shadowserver CSV is ~200 MB)
MAX_EXPANDED_BYTES = 256 * 1024 * 1024
#: members of one zip that are looked at; the rest are ignored
MAX_MEMBERS = 64


def is_gzip(data: bytes) -> bool:
    return data[:2] == b"\x1f\x8b"


def is_zip(data: bytes) -> bool:
    return data[:4] in (b"PK\x03\x04", b"PK\x05\x06")


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class Budget:
    """Bytes an archive may still expand to, shared by its members: 64 members of 250 MB
    each must not cost 16 GB of inflating."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = MAX_EXPANDED_BYTES if limit is None else limit
        self.left = self.limit


class Bounded(io.RawIOBase):
    """A read-only stream over ``inner`` that fails once the budget is spent."""

    def __init__(self, inner: _Readable, budget: Budget, name: str) -> None:
        super().__init__()
        self._inner = inner
        self._budget = budget
        self._name = name

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer)
        budget = self._budget
        try:
            chunk = self._inner.read(min(len(view), budget.left + 1))
        except ParseError:
            raise
        except Exception as exc:  # zlib, bz2, lzma and zipfile each raise their own kinds
            raise ParseError(f"{self._name}: cannot decompress: {exc}") from None
        if len(chunk) > budget.left:
            raise ParseError(f"{self._name}: expands to more than {budget.limit // 2**20} MB")
        budget.left -= len(chunk)
        view[: len(chunk)] = chunk
        return len(chunk)

    def read_all(self, most: int) -> bytes:
        """Everything, when it is at most ``most`` bytes (a document, not a feed)."""
        data = io.BufferedReader(self, buffer_size=1 << 16).read(most + 1)
        if len(data) > most:
            raise ParseError(f"{self._name}: more than {most // 2**20} MB to read whole")
        return data


def gunzip(data: bytes, name: str, budget: Budget | None = None) -> Bounded:
    """A bounded stream of the decompressed content of gzip ``data``."""
    return Bounded(gzip.GzipFile(fileobj=io.BytesIO(data)), budget or Budget(), name)


def zip_members(
    data: bytes, name: str, budget: Budget | None = None
) -> Iterator[tuple[str, Bounded]]:
    """``(member name, bounded stream)`` for the files in a zip, directories and encrypted
    members skipped, all drawing on one budget. Raises ParseError when the archive itself
    cannot be read."""
    budget = budget or Budget()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise ParseError(f"{name}: not a readable zip archive: {exc}") from None
    for info in infos[:MAX_MEMBERS]:
        if info.is_dir() or info.flag_bits & 0x1:
            continue
        try:
            stream = archive.open(info)
        except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, RuntimeError) as exc:
            raise ParseError(f"{name}: cannot open {info.filename!r}: {exc}") from None
        yield info.filename, Bounded(stream, budget, f"{name}:{info.filename}")
