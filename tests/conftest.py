"""Fixtures shared across test packages."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import NoReturn

import pytest

from tests.e2e.upstream import Upstream, start_upstream


@pytest.fixture(scope="session")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    """A real upstream API on 127.0.0.1 (HTTP and HTTPS), shared by the whole run."""
    server, stop = start_upstream(tmp_path_factory.mktemp("upstream"))
    yield server
    stop.set()


def missing(reason: str) -> NoReturn:
    """A part a test needs is absent: skip on a developer's machine, fail in CI (CI=true),
    where a skip would hide it."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (in CI this is a failure, not a skip)")
    pytest.skip(f"{reason} (a skip outside CI only; with CI=true this fails)")
