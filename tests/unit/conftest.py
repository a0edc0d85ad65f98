"""Fixtures shared by unit test modules."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.domain import Domain, load_domain
from streams.harness import TEST_RULES


@pytest.fixture(scope="module")
def domain(tmp_path_factory: pytest.TempPathFactory) -> Domain:
    """The stream domain (engine and codecs) over the test rules."""
    rules = tmp_path_factory.mktemp("rules") / "rules.yaml"
    rules.write_text(TEST_RULES)
    return load_domain(Path(rules))
