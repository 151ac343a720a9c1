"""``[dnsbl]``: which blocklist zones to ask, on top of (or instead of) the built-in catalogue,
and which of them are answered from a local mirror of the list's data instead of DNS."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, SecretStr, field_validator, model_validator

from checks.dnsbl.catalogue import CATALOGUE, MIRRORS
from checks.dnsbl.zones import Code, Zone
from collectors.config import Section, mask_url, parse_duration

SeverityName = Literal["critical", "high", "medium", "low", "info"]
#: the mirror file formats ``checks.dnsbl.mirror`` reads (docs/mirror-formats.md)
MirrorFormat = Literal[
    "ip4set", "ip4tset", "ip4trie", "ip6trie", "ip6tset", "dnset", "cidr-list", "drop-json"
]
#: formats that list domain names; every other lists addresses
DOMAIN_FORMATS = frozenset({"dnset"})
#: what ``mirror_max_age`` is when not given (the catalogue's downloads say their own)
DEFAULT_MAX_AGE = 7200.0


def _max_age(value: object) -> float:
    return parse_duration(value, minimum=60.0)


Duration = Annotated[float, BeforeValidator(_max_age)]

#: the keys a ``[[dnsbl.zones]]`` entry without ``type`` may set: it adjusts a catalogue zone
ADJUSTING_KEYS = frozenset(
    {
        "zone",
        "enabled",
        "selftest",
        "test_listed",
        "test_unlisted",
        "mirror",
        "mirror_format",
        "mirror_url",
        "mirror_max_age",
    }
)
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def check_mirror_url(url: str) -> str:
    """``url`` if repmon can fetch a mirror from it: ``rsync://host/module/path``,
    ``https://…``, or ``http://`` to a loopback address only (nothing on the way can change
    a list's data there). ValueError saying what to give otherwise; secrets never shown."""
    shown = mask_url(url)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in ("rsync", "https", "http"):
        raise ValueError(f"mirror_url {shown!r}: expected an rsync:// or https:// URL")
    if not host:
        raise ValueError(f"mirror_url {shown!r}: no host")
    if scheme == "rsync" and len([p for p in parts.path.split("/") if p]) < 2:
        raise ValueError(f"mirror_url {shown!r}: expected rsync://host/module/path/to/file")
    if scheme == "http" and not _loopback(host):
        raise ValueError(
            f"mirror_url {shown!r}: plain http:// is accepted for a loopback server only "
            "(the list's data could be changed on the way): use https:// or rsync://"
        )
    return url


def _loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class CodeConfig(Section):
    meaning: str
    severity: SeverityName = "medium"


class ZoneConfig(Section):
    """``[[dnsbl.zones]]``: a zone to add, or to override a built-in one of the same ``zone``.

    Without ``type`` the entry adjusts the catalogue zone named ``zone``: it may only set
    its mirror, its self-test and ``enabled`` (:data:`ADJUSTING_KEYS`).
    """

    zone: str
    type: Literal["ip", "domain"] | None = None
    name: str = ""
    ipv6: bool = False
    #: answer address -> meaning and severity, e.g. ``"127.0.0.2" = {meaning = "spam source"}``
    codes: dict[str, CodeConfig] = Field(default_factory=dict)
    #: answers are a bitmask of the last octet (SURBL, URIBL)
    bitmask: bool = False
    #: answers that mean "your query was refused", not a listing
    refused: list[str] = Field(default_factory=list)
    #: answers that are allow-list or informational, not a listing
    not_listed: list[str] = Field(default_factory=list)
    #: check the RFC 5782 test points each run
    selftest: bool = True
    #: lookup / delisting page; ``{target}`` is replaced by the listed address or domain
    delist: str = ""
    #: severity of an answer not in ``codes``
    severity: SeverityName = "medium"
    enabled: bool = True
    #: RFC 5782 test points to use instead of the defaults (127.0.0.2 / 127.0.0.1, test / invalid)
    test_listed: str = ""
    test_unlisted: str = ""
    #: a local copy of the zone's data: the zone is answered from it, never over DNS
    mirror: str = ""
    mirror_format: MirrorFormat | None = None
    #: where the ``mirror_refresh`` job fetches the file from (rsync:// or https://)
    mirror_url: str = ""
    #: a mirror older than this answers ``unknown`` (seconds; ``"2h"``)
    mirror_max_age: Duration = DEFAULT_MAX_AGE

    def to_zone(self) -> Zone:
        if self.type is None:
            raise ValueError(f"zone {self.zone}: adjusts a catalogue zone, it defines none")
        return Zone(
            zone=self.zone,
            kind=self.type,
            name=self.name,
            ipv6=self.ipv6,
            codes={k: Code(v.meaning, v.severity) for k, v in self.codes.items()},
            bitmask=self.bitmask,
            refused=frozenset(self.refused),
            not_listed=frozenset(self.not_listed),
            selftest=self.selftest,
            test_listed=self.test_listed or None,
            test_unlisted=self.test_unlisted or None,
            delist=self.delist,
            severity=self.severity,
        )

    def adjust(self, base: Zone) -> Zone:
        """The catalogue zone ``base`` with this entry's self-test settings."""
        given = self.model_fields_set
        changes: dict[str, object] = {}
        if "selftest" in given:
            changes["selftest"] = self.selftest
        if "test_listed" in given:
            changes["test_listed"] = self.test_listed or None
        if "test_unlisted" in given:
            changes["test_unlisted"] = self.test_unlisted or None
        return dataclasses.replace(base, **changes) if changes else base  # type: ignore[arg-type]

    @property
    def has_mirror(self) -> bool:
        return bool(self.mirror or self.mirror_url)

    @field_validator("zone")
    @classmethod
    def _zone(cls, v: str) -> str:
        v = v.strip().rstrip(".").lower()
        if not v or " " in v:
            raise ValueError("expected a DNS zone name such as 'bl.example'")
        return v

    @field_validator("mirror_url")
    @classmethod
    def _url(cls, v: str) -> str:
        return check_mirror_url(v.strip()) if v.strip() else ""

    @model_validator(mode="after")
    def _mirror_keys(self) -> ZoneConfig:
        if self.type is None:
            extra = sorted(self.model_fields_set - ADJUSTING_KEYS)
            if extra:
                raise ValueError(
                    f"zone {self.zone}: without `type` the entry adjusts a catalogue zone and "
                    f"may set only {', '.join(sorted(ADJUSTING_KEYS - {'zone'}))}; "
                    f"give `type` to define the zone ({', '.join(extra)} given)"
                )
        if self.mirror_format is not None and not self.has_mirror:
            raise ValueError(
                f"zone {self.zone}: mirror_format without mirror (the file) or mirror_url"
            )
        if self.has_mirror and self.mirror_format is None and self.zone not in MIRRORS:
            raise ValueError(
                f"zone {self.zone}: a mirror needs mirror_format (one of "
                "ip4set, ip4tset, ip4trie, ip6trie, ip6tset, dnset, cidr-list, drop-json)"
            )
        if self.mirror_format is not None and self.type is not None:
            names = self.mirror_format in DOMAIN_FORMATS
            if names != (self.type == "domain"):
                want = "dnset" if self.type == "domain" else "an address format"
                raise ValueError(
                    f"zone {self.zone}: a {self.type} zone's mirror must be {want}, "
                    f"not {self.mirror_format}"
                )
        return self


@dataclass(frozen=True, slots=True)
class MirrorSpec:
    """A zone answered from a local file: where the file is, how to read it, where it comes
    from and how old it may be (seconds). ``min_interval`` is the least time between two
    downloads the publisher asks for."""

    zone: Zone
    path: str
    format: str
    url: str = ""
    max_age: float = DEFAULT_MAX_AGE
    code: str | None = None
    txt: str | None = None
    allow_empty: bool = False
    min_interval: float = 0.0

    @property
    def label(self) -> str:
        return self.zone.label


class DnsblConfig(Section):
    #: include the built-in zone catalogue
    defaults: bool = True
    #: catalogue zones that are off by default to switch on (e.g. "sbl.spamhaus.org")
    enable: list[str] = Field(default_factory=list)
    #: catalogue zones to switch off
    disable: list[str] = Field(default_factory=list)
    #: Spamhaus DQS key: replaces the public Spamhaus zones by their DQS twins; never logged
    dqs_key: SecretStr | None = None
    zones: list[ZoneConfig] = Field(default_factory=list)
    #: where a mirror without its own ``mirror`` path is kept (``<zone>.<format>`` in it)
    mirror_dir: str = "var/mirrors"

    @field_validator("dqs_key")
    @classmethod
    def _key(cls, v: SecretStr | None) -> SecretStr | None:
        # the key becomes a DNS label: refuse anything else here, never echoing it
        if v is not None and not re.fullmatch(r"[A-Za-z0-9]{1,63}", v.get_secret_value()):
            raise ValueError("expected the DQS key: letters and digits only (the key is not shown)")
        return v

    @model_validator(mode="after")
    def _adjusting_entries(self) -> DnsblConfig:
        for zc in self.zones:
            if zc.type is not None:
                continue
            base = _catalogue_zone(zc.zone)
            if base is None:
                raise ValueError(
                    f"zones: {zc.zone} is not in the built-in catalogue: give its `type` "
                    "(and codes) to define it"
                )
            fmt = zc.mirror_format
            if fmt is not None and (fmt in DOMAIN_FORMATS) != (base.kind == "domain"):
                want = "dnset" if base.kind == "domain" else "an address format"
                raise ValueError(
                    f"zones: {zc.zone} is a {base.kind} zone: its mirror must be {want}, not {fmt}"
                )
        return self

    def _entry_zone(self, zc: ZoneConfig) -> Zone:
        if zc.type is not None:
            return zc.to_zone()
        base = _catalogue_zone(zc.zone)
        assert base is not None  # checked on load
        return zc.adjust(base)

    def active_zones(self) -> list[Zone]:
        """The zones a sweep asks: catalogue (if ``defaults``) with overrides, then additions."""
        key = self.dqs_key.get_secret_value() if self.dqs_key else ""
        enable = {z.lower() for z in self.enable}
        disable = {z.lower() for z in self.disable}
        out: dict[str, Zone] = {}
        if self.defaults:
            for z in CATALOGUE:
                on = z.enabled
                if z.needs_key:
                    on = bool(key)
                elif key and z.zone in _DQS_REPLACES:
                    on = False
                if z.label in enable or z.zone in enable:
                    on = True
                if z.label in disable or z.zone in disable:
                    on = False
                if on:
                    out[z.zone] = z
        for zc in self.zones:
            zone = self._entry_zone(zc)
            if zc.enabled:
                out[zone.zone] = zone
            else:
                out.pop(zone.zone, None)
        return list(out.values())

    def all_zones(self) -> list[Zone]:
        """Every zone known, enabled or not (for ``repmon check --zone``)."""
        known = {z.zone: z for z in CATALOGUE}
        for zc in self.zones:
            zone = self._entry_zone(zc)
            known[zone.zone] = zone
        return list(known.values())

    def mirror_specs(self, zones: Iterable[Zone] | None = None) -> dict[str, MirrorSpec]:
        """zone (``Zone.zone``) -> its mirror, for the given zones (default: the active ones)
        that have one: an entry's ``mirror``/``mirror_url``, else the catalogue's download
        (Spamhaus DROP, EDROP). A zone with a mirror is answered from it only, never over DNS.
        """
        entries: dict[str, ZoneConfig] = {}
        for zc in self.zones:
            if zc.has_mirror:
                entries[self._entry_zone(zc).zone] = zc
        out: dict[str, MirrorSpec] = {}
        for zone in self.active_zones() if zones is None else zones:
            entry = entries.get(zone.zone)
            published = MIRRORS.get(zone.zone)
            if entry is not None:
                zc = entry
                fmt = zc.mirror_format or (published.format if published else "")
                same = published is not None and fmt == published.format
                given = zc.model_fields_set
                out[zone.zone] = MirrorSpec(
                    zone=zone,
                    path=zc.mirror or self._default_path(zone, fmt),
                    format=fmt,
                    # a catalogue download keeps its URL unless the entry gives one
                    # (`mirror_url = ""`: a file kept by other means)
                    url=zc.mirror_url
                    if "mirror_url" in given or not same or published is None
                    else published.url,
                    max_age=zc.mirror_max_age
                    if "mirror_max_age" in given or published is None
                    else published.max_age,
                    code=published.code if same and published else None,
                    txt=published.txt if same and published else None,
                    allow_empty=bool(same and published and published.allow_empty),
                    min_interval=published.min_interval if same and published else 0.0,
                )
            elif published is not None:
                out[zone.zone] = MirrorSpec(
                    zone=zone,
                    path=self._default_path(zone, published.format),
                    format=published.format,
                    url=published.url,
                    max_age=published.max_age,
                    code=published.code,
                    txt=published.txt,
                    allow_empty=published.allow_empty,
                    min_interval=published.min_interval,
                )
        return out

    def _default_path(self, zone: Zone, fmt: str) -> str:
        base = self.mirror_dir.rstrip("/") or "."
        return f"{base}/{zone.label}.{fmt}"


def _catalogue_zone(name: str) -> Zone | None:
    for z in CATALOGUE:
        if name in (z.zone, z.label):
            return z
    return None


#: public Spamhaus zones that a DQS key replaces
_DQS_REPLACES = {
    "zen.spamhaus.org",
    "sbl.spamhaus.org",
    "xbl.spamhaus.org",
    "pbl.spamhaus.org",
    "dbl.spamhaus.org",
}
