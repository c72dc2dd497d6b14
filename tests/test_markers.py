"""Every collected test carries the marker of its suite, and `slow` where it starts child processes."""

from __future__ import annotations

import pytest

from .conftest import SLOW_SUITES, SUITES, TESTS


def test_each_test_is_marked_by_its_directory(request: pytest.FixtureRequest) -> None:
    checked = 0
    for item in request.session.items:
        parts = item.path.resolve().relative_to(TESTS).parts
        if len(parts) < 2:
            continue  # this file
        suite = parts[0]
        marks = {mark.name for mark in item.iter_markers()}
        assert suite in marks, item.nodeid
        assert not (marks - {suite}) & set(SUITES), item.nodeid
        if suite in SLOW_SUITES:
            assert "slow" in marks, item.nodeid
        if suite == "unit":
            assert "slow" not in marks, item.nodeid
        checked += 1
    assert checked or len(request.session.items) == 1
