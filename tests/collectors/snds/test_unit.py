"""The SNDS unit is self-contained: its sample validates, its README embeds it, its config
never echoes the key."""

from __future__ import annotations

import tomllib

import pytest
from pydantic import ValidationError

from collectors.config import parse_duration
from collectors.snds import UNIT, SndsConfig


def test_the_unit_describes_itself() -> None:
    assert UNIT.name == "snds" == UNIT.folder.name and UNIT.section == "snds"
    assert UNIT.config_model is SndsConfig and UNIT.job == "snds_fetch"
    assert UNIT.interval and parse_duration(UNIT.interval) == 6 * 3600
    SndsConfig()  # the application builds an empty section when the file has none


def test_the_sample_validates_and_the_readme_embeds_it() -> None:
    sample = (UNIT.folder / "sample.toml").read_text(encoding="utf-8")
    readme = (UNIT.folder / "README.md").read_text(encoding="utf-8")
    assert sample.strip() in readme
    for heading in ("## Configuration", "## What it emits", "## How it fails"):
        assert heading in readme
    section = SndsConfig.model_validate(tomllib.loads(sample)["snds"])
    assert section.configured and "0a1b2c3d" not in repr(section)


def test_a_bad_key_is_refused_without_being_shown() -> None:
    with pytest.raises(ValidationError) as info:
        SndsConfig(key="secret value with spaces")
    assert "secret value" not in str(info.value)
    with pytest.raises(ValidationError):
        SndsConfig(base_url="ftp://example.net/snds")
    with pytest.raises(ValidationError, match="extra"):
        SndsConfig.model_validate({"kee": "typo"})
