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
