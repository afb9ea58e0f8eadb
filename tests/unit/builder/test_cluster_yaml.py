"""cluster.yaml is a real Ray cluster-launcher config: checked against Ray's own schema."""
from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((REPO / "cluster.yaml").read_text())


def _ray_schema() -> dict:
    import ray.autoscaler

    with open(os.path.join(os.path.dirname(ray.autoscaler.__file__), "ray-schema.json")) as f:
        return json.load(f)


def test_valid_against_rays_schema(config):
    jsonschema.validate(config, _ray_schema())
    from ray.autoscaler._private.util import prepare_config, validate_config

    # What `ray up` does before touching AWS: merge the provider's defaults.yaml, then validate
    # (schema plus Ray's cross-checks: head type among the node types, max_workers, docker).
    validate_config(prepare_config(config))


def test_schema_check_can_fail(config):
    bad = {**config, "provider": {**config["provider"]}, "setup_comands": []}  # a typo'd key
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, _ray_schema())


def test_aws_head_and_worker_types(config):
    assert config["provider"]["type"] == "aws"
    types = config["available_node_types"]
    assert config["head_node_type"] in types
    workers = [name for name in types if name != config["head_node_type"]]
    assert workers and all(types[w]["max_workers"] >= 1 for w in workers)
    for spec in types.values():
        assert spec["node_config"]["InstanceType"]


def test_setup_installs_this_project_like_make_setup(config):
    assert config["file_mounts"]["~/synshard"] == "."
    assert ".venv" in config["rsync_exclude"]  # never ship the laptop's venv
    commands = " && ".join(config["setup_commands"])
    assert "make setup" in commands and "cd ~/synshard" in commands
    starts = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    assert all("ray start" in c or "ray stop" in c for c in starts)
    assert all(".venv/bin/ray" in c for c in starts)  # Ray from the project's own venv
    assert "working_dir" not in json.dumps(config)


def test_no_credentials_in_the_config():
    text = (REPO / "cluster.yaml").read_text().lower()
    assert "aws_secret_access_key" not in text and "aws_access_key_id" not in text
