"""One embedded local Ray (127.0.0.1) per test session, shared by the build tests."""
from __future__ import annotations

import logging

import pytest


@pytest.fixture(scope="session")
def ray_local():
    from synshard.builder.raysession import loopback_ray_init, ray

    if not ray.is_initialized():
        loopback_ray_init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                          logging_level=logging.ERROR)
    yield ray
    ray.shutdown()



@pytest.fixture(scope="session")
def sample_release(tmp_path_factory, sample_dir, ray_local):
    """The bundled sample built once (20% val), for tests that only read a release."""
    import synshard

    out = tmp_path_factory.mktemp("sample-release") / "rel"
    synshard.build([str(sample_dir)], str(out), val_fraction=0.2, progress=False,
                   log=lambda m: None)
    return out
