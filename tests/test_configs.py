"""Every shipped config loads, names a registered model and gives valid graph settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from atomgraph.models import model_card
from atomgraph.training.config import load_config
from atomgraph.training.datasets import graph_spec

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_configs_are_shipped():
    assert len(CONFIGS) >= 8


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_loads(path):
    config = load_config(path)
    assert config["run_dir"] == f"runs/{config['name']}"
    assert graph_spec(config).kind == model_card(config["model"]["name"]).graph_kind


def test_settings_from_code_merge_like_a_config_file():
    from atomgraph.training.config import ConfigError, wall_clock_budget

    config = load_config(
        settings={"name": "x", "model": {"name": "gat", "heads": 2}, "training": {"lr": 0.01}}
    )
    assert config["model"] == {"name": "gat", "heads": 2}
    assert config["training"]["lr"] == 0.01 and config["run_dir"] == "runs/x"
    with pytest.raises(ConfigError, match=r"training\.lrr"):
        load_config(settings={"training": {"lrr": 0.01}})
    assert wall_clock_budget(90.5) == "00:01:30:30"
    assert wall_clock_budget(0) == "00:00:00:01"
