"""The Postmaster Tools unit is self-contained: its sample validates and its README embeds it."""

from __future__ import annotations

import tomllib

from collectors.config import parse_duration
from collectors.postmaster import UNIT, PostmasterConfig


def test_the_unit_describes_itself() -> None:
    assert UNIT.name == "postmaster" == UNIT.folder.name and UNIT.section == "postmaster"
    assert UNIT.config_model is PostmasterConfig and UNIT.job == "postmaster_fetch"
    assert UNIT.interval and parse_duration(UNIT.interval) == 6 * 3600
    assert not PostmasterConfig().configured


def test_the_sample_validates_and_the_readme_embeds_it() -> None:
    sample = (UNIT.folder / "sample.toml").read_text(encoding="utf-8")
    readme = (UNIT.folder / "README.md").read_text(encoding="utf-8")
    assert sample.strip() in readme
    for heading in ("## Configuration", "## What it emits", "## How it fails"):
        assert heading in readme
    section = PostmasterConfig.model_validate(tomllib.loads(sample)["postmaster"])
    assert section.configured and section.max_retry_after == 60
