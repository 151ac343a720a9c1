"""``repmon cases …`` and ``repmon evaluate`` end to end on a SQLite file, with a real webhook."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.store import Store
from tests.monitor.test_cases_notify import receiver
from tests.monitor.test_cases_rules import IP, T0, check


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "repmon.toml"
    path.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path / "repmon.db"}"\n'
        '[[inventory.pools]]\nname = "p1"\ncidrs = ["203.0.113.0/28"]\ncustomer = "acme"\n'
    )
    return path


def seed(config_file: Path) -> None:
    url = config_file.read_text().split('"')[1]
    store = Store.open(url)
    check(store, "problem", T0)
    store.close()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_evaluate_list_show_ack_note_resolve(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = str(config_file)
    code, out, _ = run(capsys, "evaluate", "--config", cfg)
    assert code == 0 and "opened 0" in out  # empty store: nothing open
    seed(config_file)
    code, out, _ = run(capsys, "evaluate", "--config", cfg, "--json")
    assert code == 1  # a case is open
    assert json.loads(out)["cases"]["opened"] == 1
    code, out, _ = run(capsys, "cases", "list", "--config", cfg)
    assert code == 0 and "blocklisting" in out and IP in out and "acme" in out
    code, out, _ = run(capsys, "cases", "list", "--config", cfg, "--json", "--severity", "high")
    [case] = json.loads(out)
    cid = str(case["id"])
    code, out, _ = run(capsys, "cases", "show", cid, "--config", cfg)
    assert "listed on zen.spamhaus.org" in out and "delist" in out and "timeline" in out
    assert run(capsys, "cases", "ack", cid, "--config", cfg)[0] == 0
    assert run(capsys, "cases", "note", cid, "called the customer", "--config", cfg)[0] == 0
    code, out, _ = run(capsys, "cases", "resolve", cid, "--note", "delisted", "--config", cfg)
    assert code == 0 and "resolved" in out
    code, out, _ = run(capsys, "cases", "show", cid, "--config", cfg, "--json")
    shown = json.loads(out)
    assert shown["state"] == "resolved"
    assert [e["kind"] for e in shown["events"]] == ["opened", "acknowledged", "note", "resolved"]
    code, out, _ = run(capsys, "cases", "list", "--config", cfg, "--state", "resolved")
    assert cid in out


def test_missing_case_and_bad_moves(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(config_file)
    code, _, err = run(capsys, "cases", "show", "42", "--config", cfg)
    assert code == 1 and "no case 42" in err
    seed(config_file)
    run(capsys, "evaluate", "--config", cfg)
    run(capsys, "cases", "resolve", "1", "--note", "done", "--config", cfg)
    code, _, err = run(capsys, "cases", "ack", "1", "--config", cfg)
    assert code == 1 and "resolved" in err
    with pytest.raises(SystemExit):
        main(["cases", "resolve", "1", "--config", cfg])  # --note is required


def test_evaluate_delivers_to_webhooks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with receiver() as rec:
        path = tmp_path / "hooked.toml"
        path.write_text(
            f'[store]\nurl = "sqlite:///{tmp_path / "h.db"}"\n'
            f'[[notify.webhooks]]\nurl = "{rec.url}"\nformat = "slack"\n'
        )
        seed(path)
        code, out, _ = run(capsys, "evaluate", "--config", str(path))
        assert "notifications: delivered 1" in out
        assert len(rec.requests) == 1 and "opened" in rec.requests[0]["body"]["text"]


def test_bad_config_names_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[rules]\nhold_down = "soon"\n[enforce]\ndry_run = false\n')
    code, _, err = run(capsys, "evaluate", "--config", str(path))
    assert code == 2
    assert "rules.hold_down" in err and "enforce" in err


def test_list_states_its_limit_instead_of_capping_silently(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = config_file.read_text().split('"')[1]
    store = Store.open(url)
    for i in range(12):  # twelve listed addresses of the pool: twelve cases
        check(store, "problem", T0, target=f"203.0.113.{i}", severity="medium" if i else "critical")
    store.close()
    cfg = str(config_file)
    assert run(capsys, "evaluate", "--config", cfg)[0] == 1
    code, out, _ = run(capsys, "cases", "list", "--config", cfg, "--limit", "5")
    assert code == 0 and "5 of 12 cases shown" in out
    assert out.splitlines()[1].split()[2] == "critical"  # worst first
    code, out, _ = run(capsys, "cases", "list", "--config", cfg, "--all")
    assert "12 cases" in out
    assert run(capsys, "cases", "list", "--config", cfg, "--limit", "0")[0] == 2
