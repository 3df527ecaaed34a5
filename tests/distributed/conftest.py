"""Fixtures of the distributed-training tests: one torch thread, one local Ray cluster
per module."""

from __future__ import annotations

import pytest

from mltrail.reference import pinned_threads


@pytest.fixture(autouse=True)
def _one_thread():
    with pinned_threads(1):
        yield


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray cluster and three worker actors per test module (their start costs
    seconds): yields the actors."""
    import ray

    from mltrail.distributed.coordinator import start_workers

    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)
    yield start_workers(3)
    ray.shutdown()
