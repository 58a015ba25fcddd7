"""Fixtures shared across test packages."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.upstream import Upstream, start_upstream


@pytest.fixture(scope="session")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    """A real upstream API on 127.0.0.1 (HTTP and HTTPS), shared by the whole run."""
    server, stop = start_upstream(tmp_path_factory.mktemp("upstream"))
    yield server
    stop.set()
