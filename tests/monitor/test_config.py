"""The configuration: example files load, errors name the key, defaults are usable."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import ConfigError, load_config, parse_config
from monitor.inventory import Inventory, InventoryError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["repmon.toml", "production.toml"])
def test_example_configs_load(name: str) -> None:
    config = load_config(ROOT / "examples" / name)
    assert config.dnsbl.active_zones()
    Inventory.from_config(config)


def test_defaults_need_no_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REPMON_CONFIG", raising=False)
    config = load_config(None)
    assert config.store.url == "sqlite:///repmon.db"
    assert config.influxdb is None
    assert "zen.spamhaus.org" in {z.label for z in config.dnsbl.active_zones()}


def test_env_variable_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "c.toml"
    p.write_text('[store]\nurl = "sqlite:///x.db"\n')
    monkeypatch.setenv("REPMON_CONFIG", str(p))
    # a relative path in a config file means "beside the config file"
    assert load_config(None).store.url == f"sqlite:///{tmp_path / 'x.db'}"


def test_relative_paths_resolve_beside_the_config_file(tmp_path: Path) -> None:
    conf = tmp_path / "etc" / "repmon.toml"
    conf.parent.mkdir()
    conf.write_text('[sink]\nspool = "spool"\n[influxdb]\nurl = "http://127.0.0.1:1"\n')
    config = load_config(conf)
    assert config.store.url == f"sqlite:///{conf.parent / 'repmon.db'}"  # a default too
    assert config.sink.spool == str(conf.parent / "spool")
    assert config.influxdb is not None
    assert config.influxdb.buffer_dir == str(conf.parent / "var/influx-buffer")
    absolute = tmp_path / "abs.toml"
    absolute.write_text('[store]\nurl = "sqlite:////var/lib/repmon/r.db"\n')
    assert load_config(absolute).store.url == "sqlite:////var/lib/repmon/r.db"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[resolver]\ntimeout = -1\n", "resolver.timeout"),
        ('[resolver]\nnameservers = ["dns.example"]\n', "resolver.nameservers[0]"),
        ('[resolver]\nnameservers = ["[::1]x"]\n', "resolver.nameservers[0]"),
        ('[[dnsbl.zones]]\nzone = "a.example"\ntype = "ipv9"\n', "dnsbl.zones[0].type"),
        ("[dnsbl]\nnope = 1\n", "dnsbl.nope: unknown key"),
        (
            '[[inventory.pools]]\nname = "p"\ncidrs = ["300.1.1.1/24"]\n',
            "inventory.pools[0].cidrs[0]",
        ),
        ('[store]\nurl = "mysql://x"\n', "store.url"),
        ('[schedule]\nevaluate = "soon"\n', "schedule.evaluate"),
        ("[influxdb]\norg = 'x'\n", "influxdb.url"),
        ("not toml = = =\n", "not valid TOML"),
        ('[dnsbl]\ndqs_key = "not a key"\n', "dnsbl.dqs_key"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(p)
    assert expected in str(err.value)
    assert str(p) in str(err.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "absent.toml")


def test_nameserver_forms() -> None:
    c = parse_config({"resolver": {"nameservers": ["127.0.0.1", "127.0.0.1:5300", "[::1]:53"]}})
    assert [(n.host, n.port) for n in c.resolver.servers()] == [
        ("127.0.0.1", 53),
        ("127.0.0.1", 5300),
        ("::1", 53),
    ]


def test_zone_override_and_disable() -> None:
    c = parse_config(
        {
            "dnsbl": {
                "disable": ["bl.spamcop.net"],
                "enable": ["sbl.spamhaus.org"],
                "zones": [
                    {"zone": "zen.spamhaus.org", "type": "ip", "severity": "low"},
                    {"zone": "psbl.surriel.com", "type": "ip", "enabled": False},
                    {"zone": "bl.example", "type": "ip"},
                ],
            }
        }
    )
    zones = {z.label: z for z in c.dnsbl.active_zones()}
    assert "bl.spamcop.net" not in zones and "psbl.surriel.com" not in zones
    assert "sbl.spamhaus.org" in zones and "bl.example" in zones
    assert zones["zen.spamhaus.org"].severity == "low"


def test_inventory_refuses_huge_cidr() -> None:
    c = parse_config({"inventory": {"pools": [{"name": "p", "cidrs": ["10.0.0.0/8"]}]}})
    with pytest.raises(InventoryError, match="max_cidr_addresses"):
        Inventory.from_config(c)


def test_inventory_owners_and_domains() -> None:
    c = parse_config(
        {
            "inventory": {
                "pools": [
                    {
                        "name": "p1",
                        "cidrs": ["192.0.2.0/31", "2001:db8::1"],
                        "customer": "acme",
                        "domains": ["Example.COM"],
                    }
                ],
                "domains": [{"name": "other.example", "dkim_selectors": ["s1"]}],
            }
        }
    )
    inv = Inventory.from_config(c)
    assert list(inv.ips()) == ["192.0.2.0", "192.0.2.1", "2001:db8::1"]
    assert inv.owner_of_ip("192.0.2.1").pool == "p1"
    assert inv.owner_of_ip("198.51.100.1") is None
    assert inv.domains() == ["example.com", "other.example"]
    assert inv.dkim_selectors("other.example") == ["s1"]
    assert inv.owners["192.0.2.0"] == ("p1", "acme")


def _keys(model: type, prefix: str = "") -> list[str]:
    import typing

    from pydantic import BaseModel

    out = []
    for name, field in model.model_fields.items():  # type: ignore[attr-defined]
        sub = None
        for t in (field.annotation, *typing.get_args(field.annotation)):
            for cand in (t, *typing.get_args(t)):
                if isinstance(cand, type) and issubclass(cand, BaseModel):
                    sub = cand
        if sub is not None and typing.get_origin(field.annotation) is not dict:
            out += _keys(sub, f"{prefix}{name}.")
        else:
            out.append(f"{prefix}{name}")
    return out


def test_every_key_is_documented() -> None:
    """Every key is in docs/configuration.md, or, for a collector's own section (and its
    ``[schedule]`` job key), in that collector's README."""
    from collectors.registry import COLLECTORS
    from monitor.config import Config

    doc = (ROOT / "docs" / "configuration.md").read_text()
    readme = {
        c.section or c.job: (c.folder / "README.md").read_text() for c in COLLECTORS if c.section
    }
    jobs = {f"schedule.{c.job}": readme.get(c.section or "", "") for c in COLLECTORS if c.job}

    def documented(key: str) -> bool:
        texts = [doc, readme.get(key.split(".", 1)[0], ""), jobs.get(key, "")]
        return any(f"`{key.rsplit('.', 1)[-1]}`" in t or f"`{key}`" in t for t in texts)

    missing = [k for k in _keys(Config) if not documented(k)]
    assert not missing, (
        f"keys missing from docs/configuration.md or the collector's README: {missing}"
    )


def test_bad_dqs_key_is_never_echoed(tmp_path: Path) -> None:
    p = tmp_path / "bad.toml"
    p.write_text('[dnsbl]\ndqs_key = "s3cret key"\n')
    with pytest.raises(ConfigError) as err:
        load_config(p)
    assert "s3cret" not in str(err.value)


# -- every kind of config error ends in exit 2 naming the key ----------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[sink]\nlisten = "not-a-listen"\n', "sink.listen: expected 'host:port'"),
        ('[sink]\nlisten = "::1:25"\n', "sink.listen: write an IPv6 address in brackets"),
        ('[sink]\nlisten = "127.0.0.1:70000"\n', "sink.listen: port '70000'"),
        ('[sink]\nlisten = "300.1.1.1:25"\n', "sink.listen"),
        ('[api]\nlisten = "not-a-listen"\n', "api.listen: expected 'host:port'"),
        ('[api]\nlisten = "[zz]:8025"\n', "api.listen"),
        ('[schedule]\nevaluate = "99999999999d"\n', "schedule.evaluate: '99999999999d' is longer"),
        ('[schedule]\nevaluate = "inf"\n', "schedule.evaluate: 'inf' is not a finite"),
        ('[schedule]\nevaluate = "nan"\n', "schedule.evaluate: expected a duration"),
        ("[schedule]\nevaluate = inf\n", "schedule.evaluate"),
        (
            '[schedule]\nevaluate = "0s"\n',
            "schedule.evaluate: '0s' is shorter than the minimum, 1s",
        ),
        ('[schedule]\ndnsbl_sweep = "0s"\n', "schedule.dnsbl_sweep: '0s' is shorter"),
        ('[schedule]\nhousekeeping = "366d"\n', "schedule.housekeeping: '366d' is longer"),
        ('[schedule]\njitter = "2d"\n', "schedule.jitter"),
        ('[retention]\nfeedback = "1e400d"\n', "retention.feedback"),
        ('[rules]\nhold_down = "99999999999d"\n', "rules.hold_down"),
        ('[sink]\ntls_cert = "cert.pem"\n', "sink.tls_key: required when tls_cert is set"),
        ('[sink]\ntls_key = "key.pem"\n', "sink.tls_cert: required when tls_key is set"),
        ('[influxdb]\nurl = "influx:8086"\n', "influxdb.url: expected an http:// or https://"),
        ("a = " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(p)
    assert expected in str(err.value)
    assert err.value.exit_status == 2


def test_jitter_may_be_zero_and_intervals_keep_their_defaults() -> None:
    c = parse_config({"schedule": {"jitter": "0s", "evaluate": "1s"}})
    assert c.schedule.seconds("jitter") == 0
    assert c.schedule.seconds("evaluate") == 1
    assert c.schedule.seconds("housekeeping") == 86400


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        ("127.0.0.1:2525", "127.0.0.1", 2525),
        ("[::1]:25", "::1", 25),
        (":25", "127.0.0.1", 25),
        ("0.0.0.0:0", "0.0.0.0", 0),
        ("mx.example.net:25", "mx.example.net", 25),
    ],
)
def test_listen_forms(listen: str, host: str, port: int) -> None:
    from collectors.config import parse_listen

    assert parse_listen(listen) == (host, port)
    assert parse_config({"sink": {"listen": listen}, "api": {"listen": listen}})


def test_config_that_is_not_utf8_names_line_and_key(tmp_path: Path) -> None:
    p = tmp_path / "bad.toml"
    p.write_bytes(b'[store]\nurl = "sqlite:///r.db"\n\n[sink]\nspool = "/var/sp\xffool"\n')
    with pytest.raises(ConfigError) as err:
        load_config(p)
    assert str(err.value) == (
        f"{p}: not UTF-8 text: byte 0xff at line 5, column 17 (key sink.spool)"
    )
    p.write_bytes(b"# \xc3\x28 a comment\n")
    with pytest.raises(ConfigError, match="line 1, column 3"):
        load_config(p)


def test_unreadable_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path)  # a directory


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sink.example")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_files_are_checked_when_the_sink_starts(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    config = tmp_path / "repmon.toml"
    config.write_text('[sink]\ntls_cert = "cert.pem"\ntls_key = "missing.pem"\n')
    sink = load_config(config).sink  # loads: other commands need not read the key
    with pytest.raises(ConfigError, match=r"^sink\.tls_key: .*missing\.pem: no such file$"):
        sink.check_tls_files()
    config.write_text('[sink]\ntls_cert = "."\ntls_key = "key.pem"\n')
    with pytest.raises(ConfigError, match=r"^sink\.tls_cert: .*: not a regular file$"):
        load_config(config).sink.check_tls_files()
    (tmp_path / "garbage.pem").write_text("not pem\n")
    config.write_text('[sink]\ntls_cert = "garbage.pem"\ntls_key = "key.pem"\n')
    with pytest.raises(ConfigError, match=r"^sink\.tls_cert: .*not a PEM certificate"):
        load_config(config).sink.check_tls_files()
    config.write_text('[sink]\ntls_cert = "key.pem"\ntls_key = "cert.pem"\n')  # swapped
    with pytest.raises(ConfigError, match="sink.tls_cert"):
        load_config(config).sink.check_tls_files()
    config.write_text('[sink]\ntls_cert = "cert.pem"\ntls_key = "key.pem"\n')
    load_config(config).sink.check_tls_files()
    load_config(None).sink.check_tls_files()  # TLS off: nothing to check


def test_unreadable_tls_key(tmp_path: Path) -> None:
    import os

    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    cert, key = _self_signed(tmp_path)
    key.chmod(0)
    config = tmp_path / "repmon.toml"
    config.write_text('[sink]\ntls_cert = "cert.pem"\ntls_key = "key.pem"\n')
    with pytest.raises(ConfigError, match=r"^sink\.tls_key: .*cannot read: Permission denied"):
        load_config(config).sink.check_tls_files()


def test_sink_start_names_the_missing_tls_file(tmp_path: Path) -> None:
    # collectors/sink/server.py: Sink.__init__ calls config.check_tls_files()
    from collectors.sink.config import SinkConfig
    from collectors.sink.server import Sink

    config = SinkConfig(
        listen="127.0.0.1:0",
        spool=str(tmp_path / "spool"),
        tls_cert=str(tmp_path / "cert.pem"),
        tls_key=str(tmp_path / "key.pem"),
    )
    with pytest.raises(ConfigError, match="sink.tls_cert: .*no such file"):
        Sink(config)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://user:pass@host/db", "postgresql://user:***@host/db"),
        (
            "postgresql://u:p@ss@h:5432/db?sslmode=require",
            "postgresql://u:***@h:5432/db?sslmode=require",
        ),
        ("postgresql://u@h/db?password=s3cret&x=1", "postgresql://u@h/db?password=***&x=1"),
        ("postgresql+psycopg://u:pw@[::1]:5432/db", "postgresql+psycopg://u:***@[::1]:5432/db"),
        ("https://user:pass@influx:8086", "https://user:***@influx:8086"),
        (
            "https://influx:8086/api/v2/write?org=o&token=abc",
            "https://influx:8086/api/v2/write?org=o&token=***",
        ),
        ("https://h/x?api_key=1&keyring=2#frag", "https://h/x?api_key=***&keyring=2#frag"),
        ("host=db user=u password=s3cret dbname=x", "host=db user=u password=*** dbname=x"),
        ("sqlite:///var/lib/repmon.db", "sqlite:///var/lib/repmon.db"),
        ("postgresql://user@host/db", "postgresql://user@host/db"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    from collectors.config import mask_url

    assert mask_url(url) == masked


def test_store_url_error_masks_the_password() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"store": {"url": "mysql://admin:hunter2@db/x?token=t0k"}})
    assert "store.url" in str(err.value)
    assert "hunter2" not in str(err.value) and "t0k" not in str(err.value)
    assert "mysql://admin:***@db/x?token=***" in str(err.value)


def test_config_errors_exit_2_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from monitor.cli import main

    for name, content in (
        ("utf8.toml", b"[sink]\nspool = '\xff'\n"),
        ("listen.toml", b'[sink]\nlisten = "not-a-listen"\n'),
        ("evaluate.toml", b'[schedule]\nevaluate = "99999999999d"\n'),
        ("nested.toml", b"a = " + b"[" * 5000 + b"]" * 5000 + b"\n"),
    ):
        p = tmp_path / name
        p.write_bytes(content)
        assert main(["status", "--config", str(p)]) == 2  # an exception would escape here
        err = capsys.readouterr().err
        assert err.startswith(f"repmon: {p}: ") and "Traceback" not in err
