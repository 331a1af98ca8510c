"""The control socket's argument reader: every refusal is a ``bad_request`` that names the argument."""

from __future__ import annotations

import math
from typing import Any

import pytest

from reactord.base.errors import ControlError
from reactord.control.args import arg, tag_glob


def refusal(args: dict[str, Any], name: str, kind: Any) -> str:
    with pytest.raises(ControlError) as caught:
        arg(args, name, kind)
    assert caught.value.code == "bad_request"
    return str(caught.value)


def test_a_present_argument_of_its_kind_is_returned_and_a_missing_or_null_one_is_its_default() -> None:
    assert arg({"limit": 5}, "limit", int) == 5
    assert arg({"wait": 1.5}, "wait", (int, float)) == 1.5
    assert arg({}, "limit", int, 50) == 50
    assert arg({"limit": None}, "limit", int, 50) == 50
    assert arg({}, "tag", str, None) is None


@pytest.mark.parametrize(
    "args, kind, message",
    [
        ({}, int, "missing argument 'n'"),
        ({"n": None}, int, "missing argument 'n'"),
        ({"n": "5"}, int, "argument 'n' must be int"),
        ({"n": True}, int, "argument 'n' must be int"),
        ({"n": True}, (int, float), "argument 'n' must be int or float"),
        ({"n": math.inf}, (int, float), "argument 'n' must be a finite number"),
        ({"n": math.nan}, float, "argument 'n' must be a finite number"),
        ({"n": 2**63}, int, "argument 'n' is out of range"),
        ({"n": -(2**63) - 1}, int, "argument 'n' is out of range"),
    ],
)
def test_a_missing_or_mistyped_argument_is_a_bad_request_naming_it(
    args: dict[str, Any], kind: Any, message: str
) -> None:
    assert refusal(args, "n", kind) == message


def test_a_bool_is_taken_where_a_bool_is_asked_and_the_int64_bounds_are_in_range() -> None:
    assert arg({"all": True}, "all", bool) is True
    assert arg({"n": 2**63 - 1}, "n", int) == 2**63 - 1
    assert arg({"n": -(2**63)}, "n", int) == -(2**63)


def test_the_tag_argument_is_a_checked_glob() -> None:
    assert tag_glob({}) is None
    assert tag_glob({"tag": "web/**"}) == "web/**"
    with pytest.raises(ControlError) as caught:
        tag_glob({"tag": "web/[a"})
    assert caught.value.code == "bad_request"
