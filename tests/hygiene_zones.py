"""Test zones for the hygiene checks, served by a real nsd.

Domains (all under the reserved ``.test`` TLD) and what each exercises:

* ``good.test`` — valid SPF with an include chain and ``mx``, DMARC p=reject with
  rua, DKIM keys of every kind, MX that resolves, MTA-STS, TLS-RPT, a BIMI
  declination record; ``sub.good.test`` inherits its DMARC record.
* ``relay.test`` — the include target (ip4 + ip6 ranges).
* ``monitor.test`` — ``?all``, DMARC p=none without rua, an MX host without an
  address, a broken MTA-STS record, a BIMI logo on a loopback port nobody
  listens on.
* ``open.test`` — ``+all``, no DMARC, no MX.
* ``toomany.test`` — eleven includes (11 DNS lookups), null MX.
* ``void.test`` — three ``a:`` mechanisms naming nothing (3 void lookups).
* ``missinginc.test`` — include of a name with TXT but no SPF record.
* ``refused.test`` — include of a name in a zone nsd does not serve (REFUSED).
* ``bare.test`` — nothing but SOA/NS.
* :func:`dnssec_zones` — ``signed.test`` and ``broken.test`` under a ``test`` parent zone.

Reverse zones: ``2.0.192.in-addr.arpa`` and ``8.b.d.0.1.0.0.2.ip6.arpa``.
"""

from __future__ import annotations

import base64

import dns.dnssec
import dns.rdata
import dns.reversename
import dns.zone
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

V6_ZONE = "8.b.d.0.1.0.0.2.ip6.arpa"
REFUSED_NAME = "spf.elsewhere.test"

# Sending IPs and what their reverse DNS looks like
IP_GOOD = "192.0.2.10"  # mail.good.test, forward-confirmed
IP_NOMATCH = "192.0.2.11"  # PTR name resolves to another address
IP_GENERIC = "192.0.2.12"  # dsl-192-0-2-12.dyn.good.test, forward-confirmed
IP_NOPTR = "192.0.2.13"
IP_PTR_REFUSED = "192.0.2.14"  # PTR name in a zone nsd does not serve
IP_RELAY = "192.0.2.20"  # authorized through include:relay.test
IP_OUTSIDE = "192.0.2.99"
IP6_GOOD = "2001:db8::10"  # mail6.good.test, forward-confirmed


def txt(value: str) -> str:
    """A TXT rdata in zone-file syntax, split into 255-octet character-strings."""
    chunks = [value[i : i + 255] for i in range(0, len(value), 255)] or [""]
    return " ".join('"' + c.replace('"', '\\"') + '"' for c in chunks)


def spki_b64(public_key: rsa.RSAPublicKey) -> str:
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def rsa_key(bits: int) -> str:
    """Base64 SubjectPublicKeyInfo of a fresh RSA key of ``bits`` bits.

    ``cryptography`` will not generate keys under 1024 bits, so a short key is
    built from public numbers (an odd modulus of the right length): the check
    only reads the key's size.
    """
    if bits >= 1024:
        return spki_b64(rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key())
    modulus = (1 << (bits - 1)) | 0xF00D | 1
    return spki_b64(rsa.RSAPublicNumbers(65537, modulus).public_key())


def ed25519_key() -> str:
    raw = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return base64.b64encode(raw).decode()


def dkim_records() -> dict[str, str]:
    """Selector → key record text for good.test."""
    return {
        "s2048": f"v=DKIM1; k=rsa; p={rsa_key(2048)}",
        "s1024": f"v=DKIM1; k=rsa; p={rsa_key(1024)}",
        "s512": f"v=DKIM1; k=rsa; p={rsa_key(512)}",
        "ed": f"v=DKIM1; k=ed25519; p={ed25519_key()}",
        "revoked": "v=DKIM1; k=rsa; p=",
        "garbled": "v=DKIM1; k=rsa; p=not*base64",
    }


def good_zone(keys: dict[str, str]) -> str:
    lines = [
        f"@ TXT {txt('v=spf1 ip4:192.0.2.10 include:relay.test mx -all')}",
        "@ MX 10 mx.good.test.",
        "mx A 192.0.2.25",
        f"_dmarc TXT {txt('v=DMARC1; p=reject; rua=mailto:dmarc@good.test; adkim=s')}",
        f"_mta-sts TXT {txt('v=STSv1; id=20260101')}",
        f"_smtp._tls TXT {txt('v=TLSRPTv1; rua=mailto:tls@good.test')}",
        f"default._bimi TXT {txt('v=BIMI1; l=; a=;')}",
        "mail A 192.0.2.10",
        "mail6 AAAA 2001:db8::10",
        "nomatch A 192.0.2.99",
        "dsl-192-0-2-12.dyn A 192.0.2.12",
        f"sub TXT {txt('v=spf1 -all')}",
    ]
    lines += [f"{sel}._domainkey TXT {txt(rec)}" for sel, rec in keys.items()]
    return "\n".join(lines)


def spf_zone(spf: str, *extra: str) -> str:
    return "\n".join([f"@ TXT {txt(spf)}", *extra])


def zones(keys: dict[str, str], *, cache_v2: bool = False) -> dict[str, str]:
    """All forward and reverse zones. ``cache_v2`` is the changed ``cache.test`` zone."""
    includes = " ".join(f"include:i{n}.toomany.test" for n in range(1, 12))
    toomany = [f"i{n} TXT {txt(f'v=spf1 ip4:198.51.100.{n} -all')}" for n in range(1, 12)]
    cache_inc = "v=spf1 a:h1.cache.test a:h2.cache.test -all" if cache_v2 else "v=spf1 -all"
    v6_ptr = dns.reversename.from_address(IP6_GOOD).to_text().removesuffix(f".{V6_ZONE}.")
    return {
        "good.test": good_zone(keys),
        "relay.test": spf_zone("v=spf1 ip4:192.0.2.20 ip6:2001:db8::/64 ~all"),
        "monitor.test": spf_zone(
            "v=spf1 ip4:192.0.2.30 ?all",
            f"_dmarc TXT {txt('v=DMARC1; p=none')}",
            "@ MX 10 gone.monitor.test.",
            f"_mta-sts TXT {txt('v=STSv1; idx=1')}",
            f"default._bimi TXT {txt('v=BIMI1; l=https://127.0.0.1:9/logo.svg')}",
        ),
        "open.test": spf_zone("v=spf1 +all"),
        "toomany.test": spf_zone(f"v=spf1 {includes} -all", "@ MX 0 .", *toomany),
        "void.test": spf_zone("v=spf1 a:n1.void.test a:n2.void.test a:n3.void.test -all"),
        "missinginc.test": spf_zone(
            "v=spf1 include:nospf.missinginc.test -all", f"nospf TXT {txt('hello')}"
        ),
        "refused.test": spf_zone(f"v=spf1 include:{REFUSED_NAME} -all"),
        "cache.test": spf_zone(
            "v=spf1 include:inc.cache.test -all",
            f"inc TXT {txt(cache_inc)}",
            "h1 A 192.0.2.51",
            "h2 A 192.0.2.52",
            f"_dmarc TXT {txt('v=DMARC1; p=reject' if cache_v2 else 'v=DMARC1; p=none')}",
        ),
        "bare.test": "",
        "2.0.192.in-addr.arpa": "\n".join(
            [
                "10 PTR mail.good.test.",
                "11 PTR nomatch.good.test.",
                "12 PTR dsl-192-0-2-12.dyn.good.test.",
                "14 PTR host.elsewhere.test.",
            ]
        ),
        V6_ZONE: f"{v6_ptr} PTR mail6.good.test.",
    }


def _signed_zone(origin: str) -> tuple[str, dns.rdata.Rdata]:
    """A zone signed with a fresh Ed25519 key (dnspython), and the DS record for its parent."""
    key = ed25519.Ed25519PrivateKey.generate()
    dnskey = dns.dnssec.make_dnskey(key.public_key(), dns.dnssec.Algorithm.ED25519, flags=257)
    text = "\n".join(
        [
            f"@ 60 IN SOA ns.{origin}. hostmaster.{origin}. 1 3600 600 86400 60",
            f"@ 60 IN NS ns.{origin}.",
            "ns 60 IN A 127.0.0.1",
            f"@ 60 IN TXT {txt('v=spf1 -all')}",
        ]
    )
    zone = dns.zone.from_text(text, origin=origin + ".")
    with zone.writer() as txn:
        dns.dnssec.sign_zone(zone, txn=txn, keys=[(key, dnskey)], lifetime=86400)
    return zone.to_text(relativize=True), dns.dnssec.make_ds(origin + ".", dnskey, "SHA256")


def dnssec_zones() -> dict[str, str]:
    """``signed.test`` (DS matches its key) and ``broken.test`` (DS of another key), with
    their parent ``test`` zone holding the delegations and DS records."""
    signed, signed_ds = _signed_zone("signed.test")
    broken, _ = _signed_zone("broken.test")
    _, stray_ds = _signed_zone("stray.test")
    parent = "\n".join(
        [
            "signed NS ns.signed.test.",
            f"signed DS {signed_ds.to_text()}",
            "broken NS ns.broken.test.",
            f"broken DS {stray_ds.to_text()}",
        ]
    )
    return {"test": parent, "signed.test": signed, "broken.test": broken}
