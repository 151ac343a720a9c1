"""The ``dkim`` check: ``SELECTOR._domainkey.DOMAIN`` publishes a usable public key.

One result per selector (``source`` = the selector). States:

* ``unknown`` — the TXT lookup failed (timeout, SERVFAIL, REFUSED).
* ``problem`` high — no key record (NXDOMAIN / NODATA / no ``p=`` tag), a record
  that does not parse, an unknown ``v=`` or ``k=``, a revoked key (empty
  ``p=``, RFC 6376 section 3.6.1), an RSA key under 1024 bits (receivers
  must not accept those signatures, RFC 8301 section 3.2).
* ``problem`` low — an RSA key of 1024..2047 bits: accepted today, "weak"
  (RFC 8301 asks signers for 2048).
* ``problem`` medium — several key records at one name (which one a verifier
  uses is undefined).
* ``ok`` — RSA of 2048 bits or more, or an Ed25519 key (RFC 8463).

Keys are parsed with dkimpy (``dkim.util.parse_tag_value``,
``dkim.crypto.parse_public_key``) and ``cryptography`` for Ed25519.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from dkim.crypto import UnparsableKeyError, parse_public_key
from dkim.util import InvalidTagValueList, parse_tag_value

from checks.errors import ParseError
from checks.hygiene.lookup import Lookup
from checks.result import OK, PROBLEM, UNKNOWN, CheckResult, Status

CHECK = "dkim"
WEAK_BITS = 2048
MIN_BITS = 1024


class KeyRecordError(ParseError):
    """A key record that cannot be used; the message says why."""


def key_name(selector: str, domain: str) -> str:
    return f"{selector}._domainkey.{domain}"


def read_key(record: str) -> dict[str, Any]:
    """Parse a key record: ``{"type", "bits", "revoked", "testing", "tags"}``.

    Raises :class:`KeyRecordError` for a record that does not parse or names an
    unknown version or key type.
    """
    try:
        tags = parse_tag_value(record.encode("utf-8"))
    except InvalidTagValueList as exc:
        raise KeyRecordError(f"unparsable tag list ({exc})") from None
    text = {k.decode(): v.decode("utf-8", "replace") for k, v in tags.items()}
    if "v" in text and text["v"] != "DKIM1":
        raise KeyRecordError(f"unknown version v={text['v']}")
    if "p" not in text:
        raise KeyRecordError("no p= tag")
    ktype = text.get("k", "rsa").lower()
    flags = {f.strip() for f in text.get("t", "").split(":")}
    out: dict[str, Any] = {"type": ktype, "bits": None, "revoked": False, "testing": "y" in flags}
    out["tags"] = {k: v for k, v in text.items() if k != "p"}
    b64 = "".join(text["p"].split())  # FWS is allowed inside the base64 (RFC 6376 3.6.1)
    if not b64:
        out["revoked"] = True
        return out
    try:
        der = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise KeyRecordError("p= is not valid base64") from None
    if ktype == "rsa":
        try:
            modulus = parse_public_key(der)["modulus"]
        except (UnparsableKeyError, IndexError, TypeError) as exc:
            raise KeyRecordError(f"unparsable RSA key ({exc})") from None
        out["bits"] = int(modulus).bit_length()
    elif ktype == "ed25519":
        try:
            Ed25519PublicKey.from_public_bytes(der)
        except ValueError as exc:
            raise KeyRecordError(f"unparsable Ed25519 key ({exc})") from None
        out["bits"] = 256
    else:
        raise KeyRecordError(f"unknown key type k={ktype}")
    return out


def _looks_like_key(record: str) -> bool:
    low = record.replace(" ", "").lower()
    return low.startswith("v=dkim1") or "p=" in low


async def check_dkim(lookup: Lookup, domain: str, selector: str) -> CheckResult:
    """The ``dkim`` result for one selector (see the module docstring for each state)."""
    name = key_name(selector, domain)
    answer = await lookup.txt(name)

    def result(
        status: Status, detail: str, severity: str | None = None, **fields: Any
    ) -> CheckResult:
        fields = {"name": name, **fields}
        return CheckResult(
            domain, CHECK, selector, status, detail, severity=severity, fields=fields
        )

    if answer.failed:
        return CheckResult(domain, CHECK, selector, UNKNOWN, error=answer.reason())
    keys = [r for r in answer.records if _looks_like_key(r)]
    if not keys:
        why = answer.absent or "no key record among the TXT records"
        return result(PROBLEM, f"no DKIM key at {name} ({why})", "high")
    if len(keys) > 1:
        return result(PROBLEM, f"{len(keys)} key records at {name}", "medium", records=keys)
    try:
        key = read_key(keys[0])
    except KeyRecordError as exc:
        return result(PROBLEM, f"{name}: {exc}", "high", record=keys[0])
    facts = {"key_type": key["type"], "bits": key["bits"], "testing": key["testing"]}
    testing = " (t=y: testing)" if key["testing"] else ""
    if key["revoked"]:
        return result(PROBLEM, f"{name}: key revoked (empty p=)", "high", **facts)
    if key["type"] == "rsa" and key["bits"] < MIN_BITS:
        text = f"RSA {key['bits']} bits: too short, receivers ignore the signature"
        return result(PROBLEM, text, "high", **facts)
    if key["type"] == "rsa" and key["bits"] < WEAK_BITS:
        return result(PROBLEM, f"RSA {key['bits']} bits: weak (use 2048)", "low", **facts)
    return result(OK, f"{key['type']} {key['bits']} bits{testing}", **facts)
