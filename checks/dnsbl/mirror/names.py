"""Domain-name lists (rbldnsd's ``dnset``): plain and wildcard names with their answers.

rbldnsd looks a name up among the plain entries first; only if it is not there does it try
the wildcards, from the closest enclosing domain outwards, always dropping at least the
first label. The first key found decides: an exclusion there means "not listed" even when a
wider wildcard lists the name. ``$`` in the TXT becomes the *matched entry's* name, so a
wildcard answer names the wildcard's domain, not the queried host.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from checks.dnsbl.mirror.answers import EXCLUDED

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_ESCAPED = frozenset('".;\\@$')
_MAX_LABEL = 63
_MAX_NAME = 255  # wire length, length octets included


def parse_name(text: str) -> tuple[str, ...] | None:
    """The labels of a domain name in presentation form (``\\.`` and ``\\DDD`` escapes), or None.

    Empty labels are skipped and letters lowered (ASCII only), as rbldnsd stores keys; None
    for a label over 63 bytes or a name over 255.
    """
    labels: list[str] = []
    cur: list[str] = []
    i, n = 0, len(text)
    size = 1
    while i < n:
        c = text[i]
        i += 1
        if c == ".":
            if cur:
                if len(cur) > _MAX_LABEL:
                    return None
                labels.append("".join(cur))
                size += len(cur) + 1
                cur = []
            continue
        if c == "\\":
            if i >= n:
                break
            c = text[i]
            i += 1
            if c.isdigit() and c.isascii():
                v = int(c)
                for _ in range(2):
                    if i < n and text[i].isdigit() and text[i].isascii():
                        v = v * 10 + int(text[i])
                        i += 1
                if v > 255:
                    return None
                c = chr(v)
        cur.append(c)
        if size + len(cur) + 1 > _MAX_NAME:
            return None
    if cur:
        if len(cur) > _MAX_LABEL:
            return None
        labels.append("".join(cur))
    return tuple(label.translate(_ASCII_LOWER) for label in labels)


def name_text(labels: Sequence[str]) -> str:
    """A name as rbldnsd prints it into a TXT (zone-file escapes for special bytes)."""
    parts = []
    for label in labels:
        out = []
        for c in label:
            o = ord(c)
            if c in _ESCAPED:
                out.append("\\" + c)
            elif o <= 0x20 or o >= 0x7F:
                out.append(f"\\{o:03d}")
            else:
                out.append(c)
        parts.append("".join(out))
    return ".".join(parts)


class NameSet:
    """Plain and wildcard names, each with an answer id or :data:`EXCLUDED`."""

    __slots__ = ("plain", "wild")

    def __init__(self) -> None:
        self.plain: dict[tuple[str, ...], int] = {}
        self.wild: dict[tuple[str, ...], int] = {}

    def __len__(self) -> int:
        return len(self.plain) + len(self.wild)

    @classmethod
    def build(
        cls,
        plain: dict[tuple[str, ...], list[int]],
        wild: dict[tuple[str, ...], list[int]],
        group: Callable[[Sequence[int]], int],
    ) -> NameSet:
        """From every value listed per name: one exclusion excludes, several values all answer."""
        out = cls()
        for src, dst in ((plain, out.plain), (wild, out.wild)):
            for name, ids in src.items():
                distinct = sorted(set(ids))
                dst[name] = EXCLUDED if distinct[0] == EXCLUDED else group(distinct)
        return out

    def find(self, labels: tuple[str, ...]) -> tuple[int, tuple[str, ...]] | None:
        """(answer id, matched entry's labels) for a name, or None when not listed."""
        if not labels:
            return None
        got = self.plain.get(labels)
        key = labels
        if got is None:
            for cut in range(1, len(labels)):
                key = labels[cut:]
                got = self.wild.get(key)
                if got is not None:
                    break
        if got is None or got == EXCLUDED:
            return None
        return got, key
