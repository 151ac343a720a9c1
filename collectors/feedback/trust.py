"""Who sent a feedback message, and whether repmon trusts what it reports.

Anyone can send the sink a complaint, a bounce or a DMARC report. A report is **trusted**
when both hold:

1. it **authenticates** as its From domain, DMARC-style: a valid DKIM signature whose
   ``d=`` is aligned with the From domain, or an SPF ``pass`` for the SMTP client (MAIL FROM
   domain, or the HELO name for the null sender of a bounce) aligned with the From domain.
   Alignment is relaxed: the same organizational domain (the registrable domain of the
   Public Suffix List, :func:`org_domain`);
2. its From (domain, and local part where the source pins them) is a **source** allowed to
   send that kind: ``[[feedback.sources]]`` or the built-in list (``sources.py``).

A message that claims no source allowed for its kind is not checked at all (no DNS: a flood
of forged reports costs no lookups); it is untrusted with result ``skipped``. Messages given
to ``repmon ingest`` are the operator's own choice: trusted, method ``local``.

DNS goes to the configured ``[resolver]`` (``checks.resolver.sync_resolver``): DKIM keys
through dkimpy's ``dnsfunc``, SPF through pyspf pointed at the same resolver the way
``checks.hygiene.authorization`` does it. A lookup that cannot be answered (timeout,
SERVFAIL) leaves the message untrusted with result ``temperror`` (fail closed).
"""

from __future__ import annotations

import contextvars
import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import Message
from typing import Any

import dkim
import dns.exception
import dns.resolver
import spf
from dkim.util import parse_tag_value

from checks.resolver import Nameserver, sync_resolver
from collectors.feedback.limits import bare_addresses
from collectors.feedback.sources import KINDS, Source

log = logging.getLogger("repmon.feedback.trust")

#: DKIM signatures tried per message at most (a message may carry many; each costs a lookup)
MAX_SIGNATURES = 5

try:  # a dependency of checkdmarc, so normally present; kept optional
    from publicsuffixlist import PublicSuffixList

    _PSL: Any = PublicSuffixList()
except Exception:  # pragma: no cover - the fallback below is documented
    _PSL = None

#: second-level labels under which registrations are made (fallback without the PSL)
_TWO_LEVEL = frozenset(
    [
        "co.uk",
        "org.uk",
        "ac.uk",
        "gov.uk",
        "me.uk",
        "ltd.uk",
        "plc.uk",
        "net.uk",
        "co.jp",
        "ne.jp",
        "or.jp",
        "ac.jp",
        "go.jp",
        "com.au",
        "net.au",
        "org.au",
        "edu.au",
        "gov.au",
        "co.nz",
        "org.nz",
        "net.nz",
        "com.br",
        "net.br",
        "org.br",
        "co.za",
        "org.za",
        "com.cn",
        "net.cn",
        "org.cn",
        "com.tw",
        "com.hk",
        "com.sg",
        "com.my",
        "co.in",
        "net.in",
        "org.in",
        "co.kr",
        "or.kr",
        "com.mx",
        "com.ar",
        "com.tr",
        "co.il",
        "com.ua",
        "com.pl",
    ]
)


def org_domain(name: str) -> str:
    """The organizational domain of ``name``: its registrable domain by the Public Suffix
    List; without the list, the last two labels (three under a known two-level suffix such as
    ``co.uk``)."""
    name = name.strip().lower().rstrip(".")
    if not name:
        return ""
    if _PSL is not None:
        found = _PSL.privatesuffix(name)
        return str(found) if found else name
    labels = name.split(".")
    if len(labels) >= 3 and ".".join(labels[-2:]) in _TWO_LEVEL:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def aligned(a: str, b: str) -> bool:
    """Relaxed DMARC alignment: the same organizational domain."""
    return bool(a) and bool(b) and org_domain(a) == org_domain(b)


def trust_kind(kind: str) -> str:
    """The source kind a report kind needs (a delay notice is a bounce)."""
    return "bounce" if kind == "delay" else kind


@dataclass(frozen=True, slots=True)
class Envelope:
    """What the SMTP session said: MAIL FROM ("" for the null sender), client IP, HELO."""

    mail_from: str = ""
    peer: str = ""
    helo: str = ""


@dataclass(frozen=True, slots=True)
class Sender:
    """The trust facts of one message: one ``feedback_senders`` row."""

    channel: str  # "smtp" or "local"
    from_domain: str  # the header From domain, as claimed
    reporter: str  # the domain it authenticated as ("" when none)
    method: str  # "dkim", "spf", "local" or ""
    result: str  # pass fail none temperror permerror skipped
    trusted: bool
    source: str = ""  # the matching source's domain
    peer: str = ""
    helo: str = ""
    reason: str = ""

    @property
    def shown_as(self) -> str:
        """How a case names it: the authenticated domain, else the claimed one, else the IP."""
        return self.reporter or self.from_domain or self.peer or "unknown sender"


def from_address(message: Message | None) -> tuple[str, str] | None:
    """(local part, domain) of the single From address; None when there is not exactly one."""
    if message is None:
        return None
    values = message.get_all("From") or []
    if len(values) != 1:
        return None
    # without recursion: a From of deeply nested comments must not crash the intake
    addresses = [a for a in bare_addresses([str(v) for v in values]) if a]
    if len(addresses) != 1 or "@" not in addresses[0]:
        return None
    local, _, domain = addresses[0].rpartition("@")
    domain = domain.strip().lower().rstrip(".")
    if not domain or not local:
        return None
    return local.lower(), domain


def local_sender(message: Message | None, kind: str) -> Sender:
    """A message the operator gave ``repmon ingest``: trusted by choice."""
    found = from_address(message)
    return Sender(
        channel="local",
        from_domain=found[1] if found else "",
        reporter="",
        method="local",
        result="pass",
        trusted=True,
        reason="given to repmon ingest by the operator",
    )


class _QuietLog:
    """dkimpy's logger: keeps the last error as the reason instead of logging it."""

    def __init__(self) -> None:
        self.last = ""

    def debug(self, *args: Any, **kw: Any) -> None:
        pass

    info = debug

    def warning(self, msg: Any, *args: Any, **kw: Any) -> None:
        self.last = str(msg)

    error = warning


class Verifier:
    """Authenticates spooled reports against ``sources`` with one resolver.

    Lookups are cached for the verifier's life (one intake batch): a batch of reports from
    one provider asks for its DKIM key once.
    """

    def __init__(
        self,
        sources: Sequence[Source],
        nameservers: Sequence[Nameserver] = (),
        timeout: float = 2.0,
    ) -> None:
        self.sources = tuple(sources)
        self.nameservers = list(nameservers)
        self.timeout = timeout
        self._resolver: dns.resolver.Resolver | None = None
        self._txt: dict[str, bytes | None] = {}
        self._spf: dict[tuple[str, str, str], tuple[str, str]] = {}

    @property
    def resolver(self) -> dns.resolver.Resolver:
        if self._resolver is None:
            self._resolver = sync_resolver(self.nameservers, self.timeout)
        return self._resolver

    def sources_for(self, kind: str, local: str, domain: str) -> list[Source]:
        need = trust_kind(kind)
        return [s for s in self.sources if need in s.kinds and s.covers(domain, local)]

    def authenticate(
        self, raw: bytes, message: Message | None, kind: str, envelope: Envelope
    ) -> Sender:
        """The trust facts of a message received by SMTP (see the module docstring)."""
        peer, helo = envelope.peer, envelope.helo

        def untrusted(result: str, reason: str, domain: str = "", source: str = "") -> Sender:
            return Sender("smtp", domain, "", "", result, False, source, peer, helo, reason)

        found = from_address(message)
        if found is None:
            return untrusted("none", "no single From address")
        local, domain = found
        if trust_kind(kind) not in KINDS:
            return untrusted("skipped", f"a {kind} message reports nothing to trust", domain)
        sources = self.sources_for(kind, local, domain)
        if not sources:
            return untrusted("skipped", f"{domain} is not a source of {kind} reports", domain)
        source = sources[0].domain
        results: list[tuple[str, str]] = []  # (method, result) of each attempt
        reporter = self._dkim(raw, domain, results)
        if reporter:
            return Sender("smtp", domain, reporter, "dkim", "pass", True, source, peer, helo)
        reporter = self._spf_pass(envelope, domain, results)
        if reporter:
            return Sender("smtp", domain, reporter, "spf", "pass", True, source, peer, helo)
        result = _worst(r for _, r in results)
        why = "; ".join(f"{m} {r}" for m, r in results) or "no aligned DKIM signature or SPF"
        return untrusted(result, f"{domain} did not authenticate: {why}", domain, source)

    # -- DKIM ---------------------------------------------------------------------------

    def _dkim(self, raw: bytes, from_domain: str, results: list[tuple[str, str]]) -> str:
        """The ``d=`` of the first valid signature aligned with the From domain, or ""."""
        quiet = _QuietLog()
        try:
            signer = dkim.DKIM(raw, logger=quiet, timeout=self.timeout)
            headers = [v for k, v in signer.headers if k.lower() == b"dkim-signature"]
        except Exception as exc:  # a message dkimpy cannot read is not authenticated
            results.append(("dkim", "permerror"))
            log.debug("dkim: unreadable message: %s", exc)
            return ""
        for idx, value in enumerate(headers[:MAX_SIGNATURES]):
            try:
                d = parse_tag_value(value).get(b"d", b"").decode("ascii", "replace").lower()
            except Exception:
                results.append(("dkim", "permerror"))
                continue
            if not aligned(d, from_domain):
                continue
            lookup = _Lookup(self)
            try:
                ok = signer.verify(idx=idx, dnsfunc=lookup)
            except Exception as exc:  # dkim.DKIMException and hostile input alike
                ok = False
                quiet.last = str(exc)
            if ok:
                return d
            results.append(("dkim", "temperror" if lookup.temperror else "fail"))
        return ""

    def txt(self, name: str) -> bytes | None:
        """The DKIM key record at ``name`` (cached); raises TemporaryLookup when unanswered."""
        name = name.rstrip(".").lower()
        if name in self._txt:
            return self._txt[name]
        try:
            answer = self.resolver.resolve(name, "TXT", search=False)
            value: bytes | None = b"".join(answer[0].strings) if len(answer) else None
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            value = None
        except (dns.exception.DNSException, OSError) as exc:
            raise TemporaryLookup(str(exc)) from None
        self._txt[name] = value
        return value

    # -- SPF ----------------------------------------------------------------------------

    def _spf_pass(self, env: Envelope, from_domain: str, results: list[tuple[str, str]]) -> str:
        """The SPF-authenticated domain when it passes and is aligned, else ""."""
        ip = _ip(env.peer)
        mail_from = env.mail_from.strip()
        identity = mail_from.rpartition("@")[2] if mail_from else env.helo
        identity = identity.strip().lower().rstrip(".")
        if not ip or not identity or not aligned(identity, from_domain):
            return ""
        key = (ip, mail_from.lower(), env.helo.lower())
        if key not in self._spf:
            self._spf[key] = self._check_spf(ip, mail_from, env.helo)
        result, _explanation = self._spf[key]
        if result == "pass":
            return identity
        results.append(("spf", result))
        return ""

    def _check_spf(self, ip: str, mail_from: str, helo: str) -> tuple[str, str]:
        # pyspf does its DNS through spf.DNSLookup, which checks.hygiene.authorization
        # replaces with a lookup on the resolver in its context variable: set it in a copy of
        # the context so that nothing else in this thread sees it.
        from checks.hygiene import authorization

        def run() -> tuple[str, str]:
            authorization._RESOLVER.set(self.resolver)
            result, explanation = spf.check2(
                i=ip,
                s=mail_from,
                h=helo or "unknown",
                timeout=self.timeout,
                querytime=self.timeout * 12,
            )
            return str(result), str(explanation)

        try:
            return contextvars.copy_context().run(run)
        except Exception as exc:  # a pyspf bug on hostile input: not authenticated
            return "permerror", repr(exc)


class TemporaryLookup(Exception):
    """A DNS question that got no answer (timeout, SERVFAIL, REFUSED)."""


class _Lookup:
    """dkimpy's ``dnsfunc`` on the verifier's resolver; remembers a temporary failure
    (dkimpy turns it into a plain failed verification)."""

    def __init__(self, verifier: Verifier) -> None:
        self.verifier = verifier
        self.temperror = False

    def __call__(self, name: bytes | str, timeout: float = 5) -> bytes | None:
        text = name.decode("ascii", "replace") if isinstance(name, bytes) else name
        try:
            return self.verifier.txt(text)
        except TemporaryLookup as exc:
            self.temperror = True
            raise dkim.DnsTimeoutError(str(exc)) from None


_ORDER = ("temperror", "permerror", "fail", "softfail", "neutral", "none")


def _worst(results: Any) -> str:
    seen = set(results)
    for r in _ORDER:
        if r in seen:
            return "fail" if r in ("softfail", "neutral") else r
    return "none"


def _ip(peer: str) -> str:
    """The client IP of the sink's ``peer`` ("192.0.2.1:4567", "::1:4567"; the port last)."""
    text = peer.strip()
    for candidate in (text.rpartition(":")[0], text):
        try:
            return str(ipaddress.ip_address(candidate.strip("[]")))
        except ValueError:
            continue
    return ""
