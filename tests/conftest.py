"""Shared fixtures: a real local Ray for the tests that run searches."""

from __future__ import annotations

import os

import pytest

# Before any test module imports ray: keep the tests' Ray on the loopback address.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


@pytest.fixture(scope="session")
def local_ray():
    """A real Ray on this machine (2 CPUs, loopback only, no dashboard), shared by the session."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
        )
    yield ray
    ray.shutdown()
