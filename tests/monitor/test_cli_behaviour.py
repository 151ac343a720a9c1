"""The command line as an analyst uses it, through the installed ``repmon`` command: options
before or after the sub-command, quiet on a closed pipe and on Ctrl-C, strict targets, no
silent "0 results"."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.servers import rbldnsd

REPMON = str(Path(sys.executable).parent / "repmon")
BL = ":127.0.0.2:Listed $\n127.0.0.2\n192.0.2.1\n"


def repmon(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [REPMON, *args],
        capture_output=True,
        text=True,
        timeout=60,
        **kw,  # type: ignore[call-overload]
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "repmon.toml"
    path.write_text('[store]\nurl = "sqlite:///r.db"\n')
    return path


def test_global_options_before_or_after_the_subcommand(config: Path) -> None:
    before = repmon("--config", str(config), "status", "--json")
    after = repmon("status", "--json", "--config", str(config))
    assert before.returncode == after.returncode == 0, before.stderr + after.stderr
    assert before.stdout == after.stdout
    assert (config.parent / "r.db").exists()  # the relative path sits beside the config
    assert repmon("-v", "--config", str(config), "status").returncode == 0


def test_closed_pipe_and_ctrl_c_are_quiet(config: Path, tmp_path: Path) -> None:
    with rbldnsd({"bl.example": ("ip4set", BL)}) as bl:
        config.write_text(
            config.read_text()
            + f'[resolver]\nnameservers = ["{bl.nameserver}"]\n[dnsbl]\ndefaults = false\n'
            '[[dnsbl.zones]]\nzone = "bl.example"\ntype = "ip"\n'
        )
        cmd = f"{REPMON} check --config {config} --json --only dnsbl 192.0.2.0/26 | head -c 10"
        piped = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=60)
        assert "Traceback" not in piped.stderr and "BrokenPipe" not in piped.stderr
    spool = tmp_path / "spool"
    config.write_text(config.read_text() + f'[sink]\nlisten = "127.0.0.1:0"\nspool = "{spool}"\n')
    proc = subprocess.Popen(
        [REPMON, "sink", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1)  # Ctrl-C while it may still be starting, and once it runs
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    proc = subprocess.Popen(
        [REPMON, "sink", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "listening" not in proc.stderr.readline():
        pass
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("300.1.1.1", "not a valid IPv4 address"),
        ("-", "not an IP address"),
        ("http://example.com/x", "is a URL: give its host (example.com)"),
        ("postmaster@example.com", "give its domain (example.com)"),
        ("bad-.example", "not a valid domain name"),
    ],
)
def test_targets_are_parsed_strictly(config: Path, target: str, says: str) -> None:
    out = repmon("check", "--config", str(config), "--only", "dnsbl", "--", target)
    assert out.returncode == 2 and says in out.stderr, out.stderr


def test_ipv6_without_an_ipv6_zone_is_not_silently_clean(config: Path) -> None:
    with rbldnsd({"bl.example": ("ip4set", BL)}) as bl:
        config.write_text(
            config.read_text()
            + f'[resolver]\nnameservers = ["{bl.nameserver}"]\n[dnsbl]\ndefaults = false\n'
            '[[dnsbl.zones]]\nzone = "bl.example"\ntype = "ip"\n'
        )
        out = repmon("check", "--config", str(config), "--only", "dnsbl", "2001:db8::1")
    assert out.returncode == 3, out.stdout + out.stderr
    assert "no active blocklist zone lists IPv6 addresses" in out.stdout


def test_table_shows_the_whole_reason_and_problems_first(config: Path) -> None:
    long_text = "Listed because of a very long reason " + "x" * 150 + " see https://bl.example/$"
    zone = f":127.0.0.2:{long_text}\n127.0.0.2\n192.0.2.9\n"
    with rbldnsd({"bl.example": ("ip4set", zone)}) as bl:
        config.write_text(
            config.read_text()
            + f'[resolver]\nnameservers = ["{bl.nameserver}"]\n[dnsbl]\ndefaults = false\n'
            '[[dnsbl.zones]]\nzone = "bl.example"\ntype = "ip"\n'
        )
        env = {**os.environ, "COLUMNS": "100"}
        out = repmon("check", "--config", str(config), "192.0.2.8/29", "--only", "dnsbl", env=env)
        problems = repmon("check", "--config", str(config), "192.0.2.8/29", "-q", "--only", "dnsbl")
        csv = repmon("check", "--config", str(config), "192.0.2.9", "--format", "csv")
    lines = out.stdout.splitlines()
    assert lines[1].startswith("192.0.2.9") and "PROBLEM" in lines[1]  # problems first
    assert "x" * 150 in out.stdout and "https://bl.example/192.0.2.9" in out.stdout
    assert [ln.split()[0] for ln in lines[2:9]] == [
        f"192.0.2.{i}" for i in (8, 10, 11, 12, 13, 14, 15)
    ]
    assert sum(ln.startswith("192.0.2.") for ln in problems.stdout.splitlines()) == 1
    assert csv.stdout.startswith("target,check,source,status,severity,detail,reason,delist,error")


class _Terminal:
    """A text stream that says it is a terminal."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, s: str) -> int:
        self.text += s
        return len(s)

    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_last_column_wraps_and_is_never_cut(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from monitor.cli.output import table

    long = "reason " * 30 + "https://bl.example/lookup?ip=192.0.2.9&really=long"
    for columns in ("100", "200"):
        monkeypatch.setenv("COLUMNS", columns)
        out = _Terminal()
        table([("192.0.2.9", "dnsbl", long)], ("TARGET", "CHECK", "DETAIL"), out)  # type: ignore[arg-type]
        lines = out.text.splitlines()
        assert all(len(ln) <= int(columns) or "https://" in ln for ln in lines)
        assert "…" not in out.text
        words = lines[1].split()[2:] + [w for ln in lines[2:] for w in ln.split()]
        assert words == long.split()  # every word, in order, on the wrapped lines
