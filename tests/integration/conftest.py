"""One embedded local Ray (127.0.0.1) per test session, shared by the build tests."""
from __future__ import annotations

import logging

import pytest


@pytest.fixture(scope="session")
def ray_local():
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 _node_ip_address="127.0.0.1", logging_level=logging.ERROR)
    yield ray
    ray.shutdown()
