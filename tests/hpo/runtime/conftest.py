"""The `slurm` marker and a real single-node Slurm for the tests that carry it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.hpo.runtime import kit

REQUIRE_ENV = "HPO_REQUIRE_SLURM"  # set (CI): a Slurm that cannot start fails, never skips


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "slurm: needs a real Slurm (tests/hpo/runtime/kit.py starts one as root; "
        f"skipped where it cannot, failed instead when {REQUIRE_ENV}=1)",
    )


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kit.Cluster]:
    """The Slurm that SLURM_CONF names if it answers, else one started for this session
    and stopped (with every job on it) at its end."""
    found = kit.found_cluster()
    if found is not None:
        yield found
        return
    reason = kit.unavailable_reason()
    if reason is not None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"no Slurm: {reason} ({REQUIRE_ENV}=1: these tests must run)")
        pytest.skip(f"no Slurm: {reason}")
    cluster = kit.start_cluster(tmp_path_factory.mktemp("slurm"))
    try:
        yield cluster
    finally:
        kit.stop_cluster(cluster)
