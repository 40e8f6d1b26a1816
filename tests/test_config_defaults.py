"""The config schema is the one place of the defaults: config/config.yaml shows exactly them.

Every key of workflow/schemas/config.schema.yaml has a ``default:`` (object sections ``{}``, so
that their children's defaults are filled in when a config leaves a section out), and
common.smk fills them in with ``snakemake.utils.validate(config, schema, set_default=True)``;
the rule files then read ``config[...]`` without a fallback of their own.
"""

from __future__ import annotations

import copy
import json
import re

import pytest
import yaml
from snakemake.utils import validate

from .conftest import REPO

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
CONFIG = REPO / "config" / "config.yaml"
RULES = REPO / "workflow" / "rules"


def schema_defaults(schema: dict, where: str = "") -> dict:
    """The config the schema's defaults give: every property's default, object sections built
    from their children's defaults (each section's own default must be {})."""
    out = {}
    for key, sub in schema["properties"].items():
        name = f"{where}{key}"
        assert "default" in sub, f"schema key {name} has no default"
        value = copy.deepcopy(sub["default"])
        if sub.get("type") == "object" and "properties" in sub:
            assert value == {}, f"object section {name} must have default {{}}"
            value = schema_defaults(sub, f"{name}.")
        out[key] = value
    return out


def typed(value) -> str:
    """A canonical text of a config value that tells 56 from 56.0 and 1 from true."""
    return json.dumps(value, sort_keys=True)


@pytest.fixture(scope="module")
def schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())


@pytest.fixture(scope="module")
def shipped() -> dict:
    return yaml.safe_load(CONFIG.read_text())


def test_config_yaml_equals_schema_defaults(schema, shipped):
    defaults = schema_defaults(schema)
    assert shipped == defaults
    assert typed(shipped) == typed(defaults)


def test_defaults_are_valid(schema):
    cfg = schema_defaults(schema)
    validate(cfg, str(SCHEMA), set_default=False)


def test_validate_fills_in_config_yaml(shipped):
    required = ["cohort", "results", "seed", "visits", "baseline_visit"]
    cfg = {k: copy.deepcopy(shipped[k]) for k in required}
    validate(cfg, str(SCHEMA), set_default=True)
    assert cfg == shipped
    assert typed(cfg) == typed(shipped)


def test_validate_fills_in_a_partial_section(shipped):
    """A section given in part keeps the user's values and takes the rest from the schema."""
    cfg = {k: shipped[k] for k in ["cohort", "results", "seed", "visits", "baseline_visit"]}
    cfg["clinical"] = {"simon": {"p0": 0.3}, "horizon_days": 28}
    validate(cfg, str(SCHEMA), set_default=True)
    want = copy.deepcopy(shipped["clinical"])
    want["simon"]["p0"] = 0.3
    want["horizon_days"] = 28
    assert cfg["clinical"] == want
    assert cfg["signatures"] == shipped["signatures"]


def test_rule_files_read_config_without_fallbacks():
    """No `.get(key, default)` in the rule files: the schema gives every default."""
    found = [
        f"{smk.name}:{i}: {line.strip()}"
        for smk in sorted(RULES.glob("*.smk"))
        for i, line in enumerate(smk.read_text().splitlines(), 1)
        if re.search(r"\.get\(", line)
    ]
    assert not found, found
