"""Dashboard specs: the packaged ones are valid, and mistakes are reported with file and line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from pfill.cli import cli
from pfill.dashboards.specs import json_schema, load_specs, packaged_dashboards, validate_specs
from pfill.errors import ConfigError
from pfill.queries.catalog import load_queries


def test_packaged_specs_are_valid_with_32_charts() -> None:
    specs = load_specs()
    assert validate_specs(specs, load_queries()) == []
    assert len(specs) == 8
    assert sum(len(s.spec.charts) for s in specs) == 32
    by_slug = {s.spec.slug: len(s.spec.charts) for s in specs}
    assert by_slug == {"hub": 6, "allocation-guide": 5, "trade-recap": 4, "switching": 3, "pool-candidates": 3,
                       "existing-disposition": 3, "pooling-guide": 4, "cash-trade-slotting": 4}


def test_committed_json_schema_matches_the_models() -> None:
    committed = json.loads((packaged_dashboards() / "schema.json").read_text())
    assert committed == json_schema(), "run `pfill schema --out dashboards/schema.json`"


@pytest.fixture
def specs_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "dashboards"
    shutil.copytree(packaged_dashboards(), folder, ignore=shutil.ignore_patterns("__*", "*.py"))
    return folder


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_unknown_column_names_file_and_line(specs_copy: Path) -> None:
    spec = specs_copy / "trade-recap.yaml"
    _edit(spec, "groupby: [fill_status]", "groupby: [fill_state]")
    problems = validate_specs(load_specs(specs_copy), load_queries())
    line = _line_of(spec, "groupby: [fill_state]")
    assert problems == [f"{spec}:{line}: chart fill_status: column 'fill_state' is not returned by query trade_recap"]


def test_schema_errors_name_file_line_and_field(specs_copy: Path) -> None:
    spec = specs_copy / "switching.yaml"
    _edit(spec, "viz: table", "viz: tabel")
    with pytest.raises(ConfigError) as failure:
        load_specs(specs_copy)
    line = _line_of(spec, "viz: tabel")
    assert f"{spec}:{line}: charts.0.viz: Input should be" in str(failure.value)


def test_layout_mistakes(specs_copy: Path) -> None:
    spec = specs_copy / "switching.yaml"
    _edit(spec, "  - [pairs]", "  - [pairs, nope]")
    problems = validate_specs(load_specs(specs_copy), load_queries())
    assert any("layout names unknown chart 'nope'" in p for p in problems)
    _edit(spec, "  - [pairs, nope]", "  - []")
    problems = validate_specs(load_specs(specs_copy), load_queries())
    assert problems == [f"{spec}: chart 'pairs' is not placed in the layout"]


def test_validate_command_exit_codes(specs_copy: Path) -> None:
    good = CliRunner().invoke(cli, ["validate", "--dashboards", str(specs_copy)])
    assert good.exit_code == 0 and "8 dashboards, 32 charts" in good.output
    _edit(specs_copy / "hub.yaml", "x_axis: started_at", "x_axis: start_time")
    bad = CliRunner().invoke(cli, ["validate", "--dashboards", str(specs_copy)])
    assert bad.exit_code == 1
    assert "hub.yaml:" in bad.output and "'start_time' is not returned by query run_overview" in bad.output
    assert "Traceback" not in bad.output


@pytest.mark.parametrize("key", ["viz_type", "datasource"])
def test_options_may_not_retarget_a_chart(tmp_path: Path, key: str) -> None:
    """`options` passes form data through as it is, except what the chart is and what it reads: a viz
    type the kit cannot build (which Superset would accept and verify would pass) is refused."""
    folder = tmp_path / "dashboards"
    shutil.copytree(packaged_dashboards(), folder, ignore=shutil.ignore_patterns("__*", "*.py"))
    spec = yaml.safe_load((folder / "hub.yaml").read_text())
    spec["charts"][0]["options"] = {key: "deck_arc"}
    (folder / "hub.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(ConfigError, match=rf"hub\.yaml:\d+: charts\.0\.options: options may not set {key}"):
        load_specs(folder)
