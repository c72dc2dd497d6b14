"""A deployment's lifecycle tags: expiresAt / ttlHours / keepAlive in PUT and PATCH bodies, and expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.deployment_requests import parse_patch, parse_put
from services.errors import ValidationError
from services.lifecycle_tags import expired, keep_alive, lifecycle_changes, with_changes

NOW = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
FT = "gpt-4o-mini-2024-07-18.ft-0123abcd"


def test_ttl_hours_become_an_utc_expiry_tag() -> None:
    changes = lifecycle_changes({"ttlHours": 1.5}, {"ttlHours"}, NOW)
    assert changes == {"expiresAt": "2026-11-30T13:30:00Z"}


def test_an_expiry_with_an_offset_is_stored_in_utc_and_null_clears_it() -> None:
    assert lifecycle_changes({"expiresAt": "2026-12-01T10:00:00+02:00"}, {"expiresAt"}, NOW) == {
        "expiresAt": "2026-12-01T08:00:00Z"
    }
    assert lifecycle_changes({"expiresAt": None}, {"expiresAt"}, NOW) == {"expiresAt": None}
    assert with_changes({"team": "a", "expiresAt": "x"}, {"expiresAt": None}) == {"team": "a"}


@pytest.mark.parametrize(
    ("fields", "target"),
    [
        ({"expiresAt": "2026-12-01T10:00:00Z", "ttlHours": 2}, "ttlHours"),
        ({"expiresAt": "2026-12-01T10:00:00"}, "expiresAt"),  # no time zone
        ({"expiresAt": "tomorrow"}, "expiresAt"),
        ({"expiresAt": "2026-11-30T11:00:00Z"}, "expiresAt"),  # in the past
    ],
)
def test_bad_expiries_are_refused(fields: dict[str, object], target: str) -> None:
    with pytest.raises(ValidationError) as raised:
        lifecycle_changes(fields, set(fields), NOW)
    assert raised.value.code == "InvalidExpiry" and raised.value.target == target


def test_keepalive_is_a_true_false_tag() -> None:
    assert lifecycle_changes({"keepAlive": True}, {"keepAlive"}, NOW) == {"keepAlive": "true"}
    assert keep_alive({"keepAlive": "True"}) and not keep_alive({"keepAlive": "false"}) and not keep_alive({})


def test_expiry_is_inclusive_and_ignores_tags_that_are_not_times() -> None:
    tags = {"expiresAt": "2026-11-30T12:00:00Z"}
    assert expired(tags, NOW) and not expired(tags, NOW - timedelta(seconds=1))
    assert not expired({"expiresAt": "soon"}, NOW) and not expired({}, NOW)


def test_put_and_patch_bodies_take_the_lifecycle_fields() -> None:
    put = parse_put({"model": FT, "ttlHours": 24, "keepAlive": True})
    assert set(put.lifecycle()) == {"expiresAt", "keepAlive"}
    patch = parse_patch(b'{"expiresAt": null}')
    assert patch.lifecycle() == {"expiresAt": None}  # a PATCH with only a lifecycle change is a change
    with pytest.raises(ValidationError):
        parse_put({"model": FT, "ttlHours": 0})
    with pytest.raises(ValidationError):
        parse_put({"model": FT, "keepAlive": "yes"})
