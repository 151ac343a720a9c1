"""Blocklist zones answered from local mirror files instead of DNS, and inventories of any size.

A zone with a mirror (``[[dnsbl.zones]] mirror = …``, or a catalogue download such as Spamhaus
DROP) is never asked over DNS. Its file is read by :mod:`checks.dnsbl.mirror` (the same
answers as the list's rbldnsd: codes, TXT, "not listed") and kept loaded in this process
(:data:`CACHE`), reloaded when the file changes. A file that is missing, unreadable or older
than the zone's ``mirror_max_age`` answers ``unknown`` for the zone, never ``ok``; a file that
fails the zone's RFC 5782 self-test makes the zone untrusted, as over DNS.

The sweep (:class:`MirrorPart`, hooked into :func:`collectors.dnsbl.sweep.sweep_dnsbl`) does
not expand the inventory: the pools' networks are matched against the listings by interval
arithmetic (:meth:`checks.dnsbl.mirror.Mirror.match_ranges`), and only listed (and unknown)
addresses become results. The clean part travels as counts: each chunk is a stretch of
address space (:class:`RangeTargets`) cut so that it holds at most :data:`CHUNK_LISTED`
listed pairs, whatever its size. Domains, and explicit target lists, are answered one by
one (:func:`answer_targets`), which gives the same results as DNS would.

Freshness: the refresh job (``collectors/mirror``) writes a state file beside each mirror
(``<mirror>.state.json``: when the copy was last confirmed current, the ETag and
Last-Modified of the download). A mirror's age is the time since the later of its file's
modification and that confirmation.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any, overload

import numpy as np

from checks.dnsbl import Target
from checks.dnsbl.lookup import Verdict, interpret
from checks.dnsbl.mirror import (
    AddressRange,
    Answer,
    Mirror,
    UnusableMirror,
    check_with_mirrors,
    dns_answer,
    load,
    mirror_selftest,
)
from checks.dnsbl.zones import Zone
from checks.result import OK, PROBLEM, UNKNOWN, CheckResult
from collectors.dnsbl.config import DnsblConfig, MirrorSpec
from collectors.sweep import Chunk, Progress, Recorder, SourceCount, SweepSummary
from collectors.targets import Targets

log = logging.getLogger("repmon.mirror")

#: listed or unknown (address, zone) pairs per chunk handed to the recorder, at most (about)
CHUNK_LISTED = 50_000
#: targets per chunk when targets are answered one by one (domains, a given list)
CHUNK_TARGETS = 4096
#: the detail of every answer of a zone whose mirror failed its self-test (as over DNS)
UNTRUSTED = "zone not trusted in this run"
#: the detail of every answer of a zone whose mirror cannot be used (missing, stale, broken)
UNUSABLE = "mirror not usable"
STATE_SUFFIX = ".state.json"
_OCTETS = tuple(str(i) for i in range(256))


# --- freshness: the state file the refresh job writes beside a mirror ------------------------


@dataclass(frozen=True, slots=True)
class MirrorState:
    """What the refresh job knows of a mirror: when it was last confirmed current (Unix
    time), and the download's validators for the next conditional request."""

    verified_at: float | None = None
    etag: str | None = None
    last_modified: str | None = None
    #: a digest of the URL the validators belong to (another URL: start afresh)
    source: str | None = None


def state_path(path: str | os.PathLike[str]) -> Path:
    return Path(f"{os.fspath(path)}{STATE_SUFFIX}")


def url_digest(url: str) -> str:
    """A digest of a mirror URL for the state file (the URL may carry a secret)."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def read_state(path: str | os.PathLike[str]) -> MirrorState:
    """The state file of the mirror at ``path``; an empty state when there is none (or it
    cannot be read: the next download is then unconditional)."""
    try:
        data = json.loads(state_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return MirrorState()
    if not isinstance(data, dict):
        return MirrorState()
    verified = data.get("verified_at")
    return MirrorState(
        verified_at=float(verified) if isinstance(verified, int | float) else None,
        etag=data.get("etag") if isinstance(data.get("etag"), str) else None,
        last_modified=data.get("last_modified")
        if isinstance(data.get("last_modified"), str)
        else None,
        source=data.get("source") if isinstance(data.get("source"), str) else None,
    )


def write_state(path: str | os.PathLike[str], state: MirrorState) -> None:
    """Write the state file atomically (a temporary file beside it, then ``os.replace``)."""
    target = state_path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(dataclasses.asdict(state)) + "\n", encoding="utf-8")
    os.replace(tmp, target)


def mirror_age(path: str | os.PathLike[str], now: float | None = None) -> float | None:
    """Seconds since the mirror at ``path`` was written or last confirmed current (its state
    file); None when the file does not exist."""
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        return None
    verified = read_state(path).verified_at or 0.0
    now = time.time() if now is None else now
    return max(0.0, now - max(mtime, verified))


def duration_text(seconds: float) -> str:
    """``5400`` → ``"1h30m"``: an age as people read it."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    d, rest = divmod(s, 86400)
    h, rest = divmod(rest, 3600)
    m = rest // 60
    parts = [f"{d}d"] if d else []
    parts += [f"{h}h"] if h else []
    parts += [f"{m}m"] if m and not d else []
    return "".join(parts) or "0m"


# --- the loaded mirrors of this process -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Loaded:
    """A zone's mirror as this process can use it now.

    ``mirror`` is None when it cannot be used at all (``error`` says why: missing, stale,
    unreadable); ``untrusted`` says why a loaded mirror failed the zone's self-test.
    ``age`` is in seconds (None when the file is missing).
    """

    spec: MirrorSpec
    mirror: Mirror | None
    age: float | None
    error: str | None = None
    untrusted: str | None = None

    @property
    def usable(self) -> bool:
        return self.mirror is not None and self.untrusted is None

    @property
    def reason(self) -> str:
        """Why the zone's answers are unknown (empty when it is usable)."""
        return self.error or self.untrusted or ""

    @property
    def detail(self) -> str:
        return UNTRUSTED if self.mirror is not None and self.untrusted else UNUSABLE


def _stamp(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev)


class MirrorCache:
    """Mirrors loaded in this process, each reloaded when its file changes (modification
    time, size or inode: the refresh job's ``os.replace`` gives a new inode).

    A file that changed and cannot be loaded is not replaced by the copy held before: the
    zone answers ``unknown`` until a usable file is there.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[tuple[Any, ...], tuple[tuple[int, int, int, int], Mirror]] = {}

    def clear(self) -> None:
        with self._lock:
            self._held.clear()

    def put(self, spec: MirrorSpec, mirror: Mirror) -> None:
        """Hold ``mirror`` as the contents of the file now at ``spec.path`` (the refresh job
        has just loaded and swapped it in: the next sweep need not read it again)."""
        try:
            stamp = _stamp(os.stat(spec.path))
        except OSError:
            return
        with self._lock:
            self._held[self._key(spec)] = (stamp, mirror)

    @staticmethod
    def _key(spec: MirrorSpec) -> tuple[Any, ...]:
        return (os.path.abspath(spec.path), spec.format, spec.code, spec.txt, spec.allow_empty)

    def get(self, spec: MirrorSpec, now: float | None = None, selftest: bool = True) -> Loaded:
        """The zone's mirror for use now: loaded (or reloaded), its age and self-test judged."""
        now = time.time() if now is None else now
        path = spec.path
        try:
            st = os.stat(path)
        except OSError as exc:
            missing = isinstance(exc, FileNotFoundError)
            why = "is missing" if missing else f"cannot be read ({exc.strerror or exc})"
            fetch = "; the mirror_refresh job fetches it" if spec.url and missing else ""
            return Loaded(spec, None, None, f"mirror {path} {why}{fetch}")
        verified = read_state(path).verified_at or 0.0
        age = max(0.0, now - max(st.st_mtime, verified))
        if age > spec.max_age:
            return Loaded(
                spec,
                None,
                age,
                f"mirror {path} is {duration_text(age)} old, older than mirror_max_age "
                f"({duration_text(spec.max_age)})",
            )
        key = self._key(spec)
        stamp = _stamp(st)
        with self._lock:
            held = self._held.get(key)
            if held is not None and held[0] == stamp:
                mirror = held[1]
            else:
                self._held.pop(key, None)  # a changed file never falls back to the old copy
                try:
                    mirror = read_mirror(spec, path)
                except UnusableMirror as exc:
                    return Loaded(spec, None, age, f"mirror unusable: {exc}")
                self._held[key] = (stamp, mirror)
                r = mirror.report
                log.info(
                    "mirror of %s loaded from %s: %d entries, %d intervals, %d malformed lines",
                    spec.label,
                    path,
                    r.entries,
                    r.intervals,
                    r.malformed,
                )
        untrusted = mirror_selftest(mirror, spec.zone) if selftest and spec.zone.selftest else None
        return Loaded(spec, mirror, age, None, untrusted)


def read_mirror(spec: MirrorSpec, path: str | os.PathLike[str] | None = None) -> Mirror:
    """Load the file of ``spec`` (or ``path``, a candidate copy) the way the zone reads it;
    raises :class:`UnusableMirror`."""
    return load(
        os.fspath(path if path is not None else spec.path),
        spec.format,
        code=spec.code,
        txt=spec.txt,
        allow_empty=spec.allow_empty,
    )


#: the mirrors of this process (the daemon's sweeps and ad hoc checks share them)
CACHE = MirrorCache()


# --- answering targets one by one: domains, ad hoc checks, given target lists ----------------


def answer_targets(
    targets: Sequence[Target],
    zones: Sequence[Zone],
    loaded: Mapping[str, Loaded],
    key: str | None = None,
) -> list[CheckResult]:
    """Every target against every zone it fits, answered from the zones' mirrors (``loaded``
    by ``Zone.zone``): the same results as DNS would give, in (target, zone) order. A zone
    whose mirror cannot be used or is untrusted answers ``unknown`` with the reason."""
    usable = [z for z in zones if loaded[z.zone].usable]
    mirrors: dict[str, Mirror] = {}
    for z in usable:
        mirror = loaded[z.zone].mirror
        assert mirror is not None
        mirrors[z.query_zone(key)] = mirror
    got = check_with_mirrors(targets, usable, mirrors, key, selftest=False)
    by_pair = {(r.target, r.source): r for r in got}
    out: list[CheckResult] = []
    for t in targets:
        for z in zones:
            if not t.fits(z):
                continue
            r = by_pair.get((t.text, z.label))
            if r is None:
                r = _unknown(t.text, z, loaded[z.zone])
            out.append(r)
    return out


def _unknown(target: str, zone: Zone, loaded: Loaded) -> CheckResult:
    fields = {"zone": zone.label, "codes": [], "meaning": "", "reason": "", "delist": ""}
    return CheckResult(
        target, "dnsbl", zone.label, UNKNOWN, loaded.detail, loaded.reason, None, fields
    )


# --- the inventory as ranges ------------------------------------------------------------------


def dnsbl_ips(watched: Targets) -> Iterable[str]:
    """The watched IPs the blocklist sweep asks one by one: ``Inventory.ips("dnsbl")`` (the
    pools checked by DNS) when the view knows pools' checks, else every watched IP."""
    if callable(getattr(watched, "ranges", None)):
        return watched.ips(check="dnsbl")  # type: ignore[call-arg]
    return watched.ips()


def ip_target(ip: str) -> Target:
    """``Target.parse`` of an inventory IP, without the parse for an IPv4 address written as
    ``ipaddress`` writes it (a sweep makes one per address)."""
    if _ip4_parse(ip) is not None:
        parts = ip.split(".")
        return Target(ip, "ip4", f"{parts[3]}.{parts[2]}.{parts[1]}.{parts[0]}")
    return Target.parse(ip)


def zone_kinds(zone: Zone) -> tuple[str, ...]:
    """The target kinds a zone is asked about."""
    if zone.kind == "domain":
        return ("domain",)
    return ("ip4", "ip6") if zone.ipv6 else ("ip4",)


def flatten(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, disjoint, merged (first, last) spans."""
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1] + 1:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def inventory_spans(watched: Targets) -> dict[int, list[tuple[int, int]]]:
    """The blocklist-checked address space of the inventory, per IP version, as sorted
    disjoint spans: from ``Inventory.ranges`` when the view has it (never expanded), else
    from the watched IPs one by one."""
    import ipaddress

    spans: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
    ranges = getattr(watched, "ranges", None)
    if callable(ranges):
        for net, _owner in ranges(check="dnsbl"):
            first = int(net.network_address)
            spans[net.version].append((first, first + net.num_addresses - 1))
    else:
        for ip in watched.ips():
            addr = ipaddress.ip_address(ip)
            spans[addr.version].append((int(addr), int(addr)))
    return {v: flatten(s) for v, s in spans.items()}


def _ip4_parse(text: str) -> int | None:
    """The value of an IPv4 address written as ``ipaddress`` writes it (no leading zeros),
    else None."""
    try:
        return int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
    except (OSError, TypeError, ValueError):
        return None


def ip4_texts(first: int, last: int) -> Iterator[str]:
    """The addresses ``first``..``last`` as text, a /24 block at a time (the strings are
    made by C code: this is what iterating a /8 costs)."""
    a = first
    while a <= last:
        block_end = min(last, a | 0xFF)
        prefix = f"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}."
        yield from map(prefix.__add__, _OCTETS[a & 0xFF : (block_end & 0xFF) + 1])
        a = block_end + 1


class TargetIndex:
    """The IPv4 targets of a collection a recorder keeps (the targets it has rows for), sorted
    by address, so that each range chunk of a sweep picks its own with two bisections.

    Shared by the chunks of one sweep. The collection may grow between chunks (the recorder
    adds the targets it made rows for): only what is new is read again. It is assumed not to
    shrink and grow back to the same size between two chunks; a smaller one is read afresh.
    """

    def __init__(self) -> None:
        self._reset(None)

    def _reset(self, of: object) -> None:
        self._of = of
        self._size = -1
        self._seen: set[str] = set()
        self._values = np.empty(0, dtype=np.uint32)
        self._texts = np.empty(0, dtype=object)

    def select(self, targets: Collection[str], spans: Sequence[tuple[int, int]]) -> set[str]:
        """The ``targets`` that are IPv4 addresses inside ``spans``."""
        self._update(targets)
        out: set[str] = set()
        values = self._values
        for a, b in spans:
            i = int(np.searchsorted(values, a, "left"))
            j = int(np.searchsorted(values, b, "right"))
            if j > i:
                out.update(self._texts[i:j].tolist())
        return out

    def _update(self, targets: Collection[str]) -> None:
        if targets is not self._of or len(targets) < self._size:
            self._reset(targets)
        if len(targets) == self._size:
            return
        if isinstance(targets, set | frozenset):
            new = targets - self._seen
        else:
            new = {t for t in targets if t not in self._seen}
        self._seen |= new
        self._size = len(targets)
        texts = [t for t in new if isinstance(t, str) and t.count(".") == 3]
        values = [_ip4_parse(t) for t in texts]
        keep = [i for i, v in enumerate(values) if v is not None]
        if not keep:
            return
        vals = np.array([values[i] for i in keep], dtype=np.uint32)
        objs = np.empty(len(keep), dtype=object)
        objs[:] = [texts[i] for i in keep]
        order = np.argsort(vals, kind="stable")
        vals, objs = vals[order], objs[order]
        at = np.searchsorted(self._values, vals)
        self._values = np.insert(self._values, at, vals)
        self._texts = np.insert(self._texts, at, objs)


class RangeTargets(Sequence[str]):
    """The targets of a range chunk: every address of some sorted, disjoint spans of one IP
    version, as text, without holding them.

    ``len`` and ``in`` cost a bisection; iterating makes every address (about 0.15 s per
    million for IPv4); :meth:`among` picks the given targets that are inside — what a
    recorder needs, the few targets it has rows for — through the sweep's shared
    :class:`TargetIndex`, without walking the chunk's addresses or all those targets.
    """

    def __init__(
        self, spans: Sequence[tuple[int, int]], version: int, index: TargetIndex | None = None
    ) -> None:
        self.version = version
        self.spans = list(spans)
        self.known_index = index
        self._firsts = [a for a, _ in self.spans]
        self._offsets: list[int] = []
        total = 0
        for a, b in self.spans:
            self._offsets.append(total)
            total += b - a + 1
        self._len = total

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        return f"<RangeTargets IPv{self.version}: {self._len} addresses in {len(self.spans)} spans>"

    def _value(self, text: object) -> int | None:
        if not isinstance(text, str):
            return None
        if self.version == 4:
            return _ip4_parse(text)
        import ipaddress

        try:
            addr = ipaddress.ip_address(text)
        except ValueError:
            return None
        return int(addr) if addr.version == 6 else None

    def __contains__(self, text: object) -> bool:
        value = self._value(text)
        if value is None:
            return False
        i = bisect.bisect_right(self._firsts, value) - 1
        return i >= 0 and value <= self.spans[i][1]

    def among(self, targets: Collection[str]) -> set[str]:
        """The ``targets`` that are in this chunk."""
        if self.version == 4 and self.known_index is not None:
            return self.known_index.select(targets, self.spans)
        return {t for t in targets if t in self}

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...

    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._len))]
        if index < 0:
            index += self._len
        if not 0 <= index < self._len:
            raise IndexError(index)
        i = bisect.bisect_right(self._offsets, index) - 1
        return _text(self.spans[i][0] + index - self._offsets[i], self.version)

    def __iter__(self) -> Iterator[str]:
        if self.version == 4:
            return chain.from_iterable(ip4_texts(a, b) for a, b in self.spans)
        return (ip6_text_std(v) for a, b in self.spans for v in range(a, b + 1))


def ip6_text_std(value: int) -> str:
    """An IPv6 address as ``ipaddress`` writes it (what ``Target.parse`` keeps)."""
    import ipaddress

    return str(ipaddress.IPv6Address(value))


def _text(value: int, version: int) -> str:
    if version == 4:
        return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"
    return ip6_text_std(value)


# --- answers of listed stretches as results ---------------------------------------------------

_SENTINEL = "\x01"
#: the longest address text substituted into a TXT (an IPv6 address as rbldnsd prints it)
_LONGEST_SUBJECT = 39
_TXT_MAX = 254


class _Answers:
    """The results of one zone's listed addresses, made as ``check_targets`` makes them from
    DNS answers: the verdict of each answer id once, the TXT per address only where the
    list's template names the address (``$``)."""

    def __init__(self, zone: Zone, mirror: Mirror) -> None:
        self.zone = zone
        self.mirror = mirror
        self._verdicts: dict[int, Verdict] = {}
        self._reasons: dict[int, tuple[str, ...] | None] = {}

    def verdict(self, answer_id: int) -> Verdict:
        v = self._verdicts.get(answer_id)
        if v is None:
            codes = self.mirror.values.codes(answer_id)
            v = self._verdicts[answer_id] = interpret(self.zone, dns_answer(Answer(codes)))
        return v

    def _template(self, answer_id: int) -> tuple[str, ...] | None:
        """The TXT records of ``answer_id`` with :data:`_SENTINEL` where the address goes,
        or None when that shortcut could differ from the real substitution (a truncated
        TXT, a sentinel in the data)."""
        if answer_id in self._reasons:
            return self._reasons[answer_id]
        members = self.mirror.values.members(answer_id)
        tmpl: tuple[str, ...] | None = None
        if not any(_SENTINEL in m.txt for m in members) and _SENTINEL not in (
            self.mirror.values.base
        ):
            texts = self.mirror.values.answer(answer_id, _SENTINEL).texts
            if all(len(t) + t.count(_SENTINEL) * _LONGEST_SUBJECT < _TXT_MAX for t in texts):
                tmpl = texts
        self._reasons[answer_id] = tmpl
        return tmpl

    def reasons(self, answer_id: int) -> Callable[[str], str]:
        """The TXT reason of ``answer_id`` for an IPv4 address (as text): the list's own
        substitution, or, when the template allows, the same made by one concatenation."""
        tmpl = self._template(answer_id)
        values = self.mirror.values
        if tmpl is None:
            return lambda address: values.answer(answer_id, address).text
        if not any(_SENTINEL in t for t in tmpl):
            constant = " ".join(tmpl)
            return lambda address: constant
        if len(tmpl) == 1:
            text = tmpl[0]
            if text.count(_SENTINEL) == 1:
                head, _, tail = text.partition(_SENTINEL)
                return lambda address: head + address + tail
            return lambda address: text.replace(_SENTINEL, address)
        return lambda address: " ".join(dict.fromkeys(t.replace(_SENTINEL, address) for t in tmpl))


def _delist(zone: Zone) -> Callable[[str], str]:
    """``zone.delist_url`` as one concatenation where the URL names the target once."""
    if zone.delist.count("{target}") == 1:
        head, _, tail = zone.delist.partition("{target}")
        return lambda target: head + target + tail
    return zone.delist_url


def ip4_results(answers: _Answers, answer_id: int, first: int, last: int) -> list[CheckResult]:
    """The results of the IPv4 addresses ``first``..``last``, all answering ``answer_id``:
    what :func:`checks.dnsbl.lookup.check_targets` makes of the same DNS answers (nothing for
    an ``ok`` answer: an allow-list code)."""
    zone = answers.zone
    v = answers.verdict(answer_id)
    if v.status == OK:
        return []
    label, codes, meaning = zone.label, list(v.codes), "; ".join(v.meanings)
    if v.status != PROBLEM:
        return [
            CheckResult(t, "dnsbl", label, UNKNOWN, "lookup failed", v.error, None,
                        {"zone": label, "codes": list(codes), "meaning": meaning, "reason": "",
                         "delist": ""})
            for t in ip4_texts(first, last)
        ]  # fmt: skip
    detail, severity = f"listed on {label}: {meaning}", v.severity
    reason, delist = answers.reasons(answer_id), _delist(zone)
    return [
        CheckResult(t, "dnsbl", label, PROBLEM, detail, None, severity,
                    {"zone": label, "codes": list(codes), "meaning": meaning,
                     "reason": reason(t), "delist": delist(t)})
        for t in ip4_texts(first, last)
    ]  # fmt: skip


# --- cutting address space into chunks of bounded listings ------------------------------------


def cut_points(stretches: Iterable[tuple[int, int]], limit: int) -> list[int]:
    """Addresses at which to cut so that between two cuts the listed stretches (of all zones
    together, counted with multiplicity) hold at most about ``limit`` addresses."""
    events: dict[int, int] = {}
    for a, b in stretches:
        events[a] = events.get(a, 0) + 1
        events[b + 1] = events.get(b + 1, 0) - 1
    cuts: list[int] = []
    filled = 0
    slope = 0
    at = None
    for pos in sorted(events):
        if at is not None and slope:
            span = pos - at
            while filled + slope * span > limit:
                step = max(1, -(-(limit - filled) // slope))
                if step > span:
                    break
                at += step
                span -= step
                cuts.append(at)
                filled = 0
            filled += slope * span
        at = pos
        slope += events[pos]
    return cuts


def split_spans(
    spans: Sequence[tuple[int, int]], cuts: Sequence[int]
) -> list[list[tuple[int, int]]]:
    """``spans`` (sorted, disjoint) cut at ``cuts`` (sorted): one list of spans per piece."""
    pieces: list[list[tuple[int, int]]] = [[]]
    k = 0
    for a, b in spans:
        while a <= b:
            while k < len(cuts) and cuts[k] <= a:
                k += 1
                if pieces[-1]:
                    pieces.append([])
            end = b if k >= len(cuts) else min(b, cuts[k] - 1)
            pieces[-1].append((a, end))
            a = end + 1
    return [p for p in pieces if p]


# --- the sweep's mirrored part ----------------------------------------------------------------


class MirrorPart:
    """The mirrored zones of one blocklist sweep, and what is left for DNS.

    Built at the start of :func:`collectors.dnsbl.sweep.sweep_dnsbl`: :attr:`dns_zones` and
    :attr:`dns_targets` are what the DNS chunks ask (zones without a mirror; the addresses of
    pools checked by DNS and the domains); :meth:`run` records the mirrored zones' results
    first, into the same summary.
    """

    def __init__(
        self,
        dnsbl: DnsblConfig,
        watched: Targets,
        targets: Sequence[Target] | None,
        started: dt.datetime,
        progress: bool | None = None,
        cache: MirrorCache | None = None,
    ) -> None:
        zones = dnsbl.active_zones()
        self.dnsbl = dnsbl
        self.watched = watched
        self.started = started
        self.progress = progress
        self.cache = cache or CACHE
        self.key = dnsbl.dqs_key.get_secret_value() if dnsbl.dqs_key else None
        self.specs = dnsbl.mirror_specs(zones)
        self.zones = [z for z in zones if z.zone in self.specs]
        self.dns_zones = [z for z in zones if z.zone not in self.specs]
        self.given = list(targets) if targets is not None else None
        if self.given is not None:
            self.dns_targets = list(self.given) if self.dns_zones else []
        else:
            self.dns_targets = self._dns_inventory_targets()

    def _dns_inventory_targets(self) -> list[Target]:
        """The inventory targets the DNS zones ask: addresses of pools checked by DNS (none
        when every IP zone is mirrored), and the domains when a domain zone is not."""
        out: list[Target] = []
        if any(z.kind == "ip" for z in self.dns_zones):
            out += [ip_target(ip) for ip in dnsbl_ips(self.watched)]
        if any(z.kind == "domain" for z in self.dns_zones):
            out += [Target.parse(d) for d in self.watched.domains()]
        return out

    def run(
        self,
        recorder: Recorder,
        summary: SweepSummary,
        stop: threading.Event | None = None,
    ) -> None:
        """Answer the mirrored zones, record their chunks, count them into ``summary``."""
        if not self.zones:
            return
        now = time.time()
        loaded = {z.zone: self.cache.get(self.specs[z.zone], now) for z in self.zones}
        for z in self.zones:
            got = loaded[z.zone]
            if not got.usable:
                log.warning("dnsbl sweep, zone %s: every answer unknown: %s", z.label, got.reason)
        if self.given is not None:
            self._one_by_one(self.given, self.zones, loaded, recorder, summary, stop)
            return
        domains = [Target.parse(d) for d in self.watched.domains()]
        domain_zones = [z for z in self.zones if z.kind == "domain"]
        ip_zones = [z for z in self.zones if z.kind == "ip"]
        spans = inventory_spans(self.watched) if ip_zones else {4: [], 6: []}
        counted = sum(b - a + 1 for s in spans.values() for a, b in s)
        if not any(z.kind == "ip" for z in self.dns_zones):
            summary.targets += counted  # the DNS chunks do not count these addresses
        if not any(z.kind == "domain" for z in self.dns_zones) and domain_zones:
            summary.targets += len(domains)
        if domain_zones and domains:
            self._one_by_one(domains, domain_zones, loaded, recorder, summary, stop)
        if ip_zones and spans[4]:
            self._ranges(spans[4], ip_zones, loaded, recorder, summary, stop)
        zones6 = [z for z in ip_zones if z.ipv6]
        if zones6 and spans[6]:
            # IPv6 pools are bounded (inventory.max_cidr_addresses): answered address by
            # address, which also covers what an IPv4 dataset answers for 6to4 addresses
            six = [Target.parse(ip6_text_std(v)) for a, b in spans[6] for v in range(a, b + 1)]
            self._one_by_one(six, zones6, loaded, recorder, summary, stop)

    def _stopping(self, stop: threading.Event | None, summary: SweepSummary) -> bool:
        if stop is not None and stop.is_set():
            summary.complete = False
            return True
        return False

    def _one_by_one(
        self,
        targets: Sequence[Target],
        zones: Sequence[Zone],
        loaded: Mapping[str, Loaded],
        recorder: Recorder,
        summary: SweepSummary,
        stop: threading.Event | None,
    ) -> None:
        for i in range(0, len(targets), CHUNK_TARGETS):
            if self._stopping(stop, summary):
                return
            part = targets[i : i + CHUNK_TARGETS]
            results = answer_targets(part, zones, loaded, self.key)
            chunk = _chunk(self.started, part, zones, results, loaded)
            recorder.record_chunk(chunk, dt.datetime.now(dt.UTC))
            summary.add_chunk(chunk)

    def _ranges(
        self,
        spans: list[tuple[int, int]],
        zones: Sequence[Zone],
        loaded: Mapping[str, Loaded],
        recorder: Recorder,
        summary: SweepSummary,
        stop: threading.Event | None,
    ) -> None:
        """IPv4 spans against the zones' mirrors by interval arithmetic, in chunks of at most
        about :data:`CHUNK_LISTED` listed pairs."""
        version = 4
        total = sum(b - a + 1 for a, b in spans)
        usable = [z for z in zones if loaded[z.zone].usable]
        for z in zones:
            if z not in usable:
                # every pair unknown: counted, never recorded one by one (the zone's recorded
                # states stay as they were, as for a zone that failed its self-test)
                got = loaded[z.zone]
                count = SourceCount(zone_kinds(z), total, 0, total, 1, got.reason)
                summary.add_chunk(Chunk("dnsbl", self.started, (), [], {z.label: count}))
        if not usable:
            return
        ranges = [AddressRange(a, b, version) for a, b in spans]
        rows: dict[str, tuple[list[int], list[int], list[int]]] = {}
        answers: dict[str, _Answers] = {}
        for z in usable:
            mirror = loaded[z.zone].mirror
            assert mirror is not None
            match = mirror.match_ranges(ranges)
            rows[z.zone] = (match.first.tolist(), match.last.tolist(), match.answer_id.tolist())
            answers[z.zone] = _Answers(z, mirror)
        stretches = chain.from_iterable(zip(r[0], r[1], strict=True) for r in rows.values())
        pieces = split_spans(spans, cut_points(stretches, CHUNK_LISTED))
        bar = Progress(f"dnsbl mirrors IPv{version}", total, self.progress)
        index = TargetIndex()  # the recorder's targets, sorted once for every chunk
        cursor = {z.zone: 0 for z in usable}
        try:
            for piece in pieces:
                if self._stopping(stop, summary):
                    return
                lo, hi = piece[0][0], piece[-1][1]
                results: list[CheckResult] = []
                sources: dict[str, SourceCount] = {}
                covered = sum(b - a + 1 for a, b in piece)
                for z in usable:
                    firsts, lasts, ids = rows[z.zone]
                    i = cursor[z.zone]
                    while i < len(lasts) and lasts[i] < lo:
                        i += 1
                    count = SourceCount(zone_kinds(z), covered)
                    j = i
                    before = len(results)
                    while j < len(firsts) and firsts[j] <= hi:
                        a, b = max(firsts[j], lo), min(lasts[j], hi)
                        results += ip4_results(answers[z.zone], ids[j], a, b)
                        j += 1
                    problems = sum(1 for r in results[before:] if r.status == PROBLEM)
                    count.listed += problems
                    count.unknown += len(results) - before - problems
                    # a stretch running past this piece is met again in the next one
                    cursor[z.zone] = j - 1 if j > i and lasts[j - 1] > hi else j
                    sources[z.label] = count
                targets = RangeTargets(piece, version, index)
                chunk = Chunk("dnsbl", self.started, targets, results, sources)
                recorder.record_chunk(chunk, dt.datetime.now(dt.UTC))
                summary.add_chunk(chunk)
                bar.advance(covered)
        finally:
            bar.close()


def _chunk(
    started: dt.datetime,
    targets: Sequence[Target],
    zones: Sequence[Zone],
    results: Sequence[CheckResult],
    loaded: Mapping[str, Loaded],
) -> Chunk:
    """The chunk of targets answered one by one: problems and unknowns, per-zone counts; a
    zone whose mirror is not usable at all is marked failed for the chunk."""
    notable = [r for r in results if r.status != OK]
    kinds: dict[str, int] = {}
    for t in targets:
        kinds[t.kind] = kinds.get(t.kind, 0) + 1
    sources: dict[str, SourceCount] = {}
    for z in zones:
        ks = zone_kinds(z)
        sources[z.label] = SourceCount(ks, covered=sum(kinds.get(k, 0) for k in ks))
    for r in notable:
        count = sources[r.source]
        if r.status == PROBLEM:
            count.listed += 1
        else:
            count.unknown += 1
    for z in zones:
        got = loaded[z.zone]
        count = sources[z.label]
        if not got.usable and count.covered:
            count.failed_chunks, count.failed = 1, got.reason
    return Chunk("dnsbl", started, [t.text for t in targets], notable, sources)
