"""attrs validator failures come back whole and at their field; every DecodeError has its frame."""

from __future__ import annotations

import attrs
import msgpack
import orjson
import pytest

from trio_rooms import DecodeError, Message
from trio_rooms.codec import WireFormat, make_codec

LONG_TEXT = "names must be short, lower case, and not already taken by anyone in this room"


def _no_spaces(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if " " in value:
        raise ValueError(f"{attribute.name!r} must not contain spaces, got {value!r}")


@attrs.frozen
class Profile:
    nickname: str = attrs.field(validator=_no_spaces)


@attrs.frozen
class SetName(Message):
    name: str = attrs.field(validator=attrs.validators.max_len(5))
    age: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    profile: Profile | None = None

    def __attrs_post_init__(self) -> None:
        if self.name == "root":
            raise ValueError(LONG_TEXT)


@attrs.frozen
class Labelled(Message):
    label: int | str = attrs.field(validator=attrs.validators.instance_of(str))


def _whole_years(age: float) -> int:
    if not age.is_integer():
        raise ValueError(f"an age is a whole number of years, got {age}")
    return int(age)


@attrs.frozen
class Converted(Message):
    age: float = attrs.field(converter=_whole_years)


def _error(fmt: WireFormat, cls: type[Message], obj: dict[str, object]) -> DecodeError:
    data = orjson.dumps(obj) if fmt == "json" else msgpack.packb(obj)
    with pytest.raises(DecodeError) as error:
        make_codec(fmt, cls).decode(data)
    assert error.value.frame == data
    return error.value


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_each_failing_validator_is_told_in_full_at_its_field(fmt: WireFormat) -> None:
    """Every field whose validator fails is reported with its whole text and its path."""
    error = _error(fmt, SetName, {"type": "setName", "name": "abcdefgh", "age": -1})
    assert str(error) == (
        "invalid value (ValueError: Length of 'name' must be <= 5: 8) @ $.name; "
        "invalid value (ValueError: 'age' must be >= 0: -1) @ $.age"
    )


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_a_nested_validator_is_told_at_its_path(fmt: WireFormat) -> None:
    """A validator of a nested class points into the nested object, in camelCase."""
    error = _error(fmt, SetName, {"type": "setName", "name": "ann", "profile": {"nickname": "a b"}})
    assert str(error) == (
        "invalid value (ValueError: 'nickname' must not contain spaces, got 'a b') "
        "@ $.profile.nickname"
    )


def test_an_attrs_type_error_is_its_text_not_a_tuple() -> None:
    """``instance_of`` raises a TypeError with extra args; only its text is shown."""
    error = _error("json", Labelled, {"type": "labelled", "label": 3})
    assert str(error) == (
        "invalid value (TypeError: 'label' must be <class 'str'> "
        "(got 3 that is a <class 'int'>).) @ $.label"
    )


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_a_post_init_failure_is_told_in_full_at_the_object(fmt: WireFormat) -> None:
    """A failure no field explains (``__attrs_post_init__``) stays at ``$``, not cut short."""
    error = _error(fmt, SetName, {"type": "setName", "name": "root"})
    assert str(error) == f"invalid value (ValueError: {LONG_TEXT}) @ $"


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_a_converter_failure_is_told_at_its_field(fmt: WireFormat) -> None:
    """A field converter that raises is blamed on its field."""
    error = _error(fmt, Converted, {"type": "converted", "age": 2.5})
    assert str(error) == (
        "invalid value (ValueError: an age is a whole number of years, got 2.5) @ $.age"
    )


@pytest.mark.parametrize(
    ("fmt", "data"),
    [
        ("json", b"{not json"),
        ("json", "[1, 2]"),
        ("json", b'{"name": "ann"}'),
        ("json", '{"type": 3}'),
        ("json", '{"type": "nope"}'),
        ("json", '{"type": "setName", "name": 5}'),
        ("msgpack", "a text frame"),
        ("msgpack", b"\xc1"),
        ("msgpack", msgpack.packb([1])),
        ("msgpack", msgpack.packb({"type": "setName"})),
    ],
)
def test_every_decode_error_carries_its_frame(fmt: WireFormat, data: bytes | str) -> None:
    """Whatever is wrong with a frame, its DecodeError holds the frame as received."""
    with pytest.raises(DecodeError) as error:
        make_codec(fmt, SetName).decode(data)
    assert error.value.frame is data


def _above_low(instance: Range, _attribute: attrs.Attribute[int], value: int) -> None:
    if value < instance.low:
        raise ValueError(f"high ({value}) must not be below low ({instance.low})")


@attrs.frozen
class Range(Message):
    low: int
    high: int = attrs.field(validator=_above_low)


def _non_negative(instance: Derived, _attribute: attrs.Attribute[int], value: int) -> None:
    if value < 0:
        raise ValueError(f"size must be >= 0, got {value} (double {instance.double})")


def _double(instance: Derived) -> int:
    return instance.size * 2


@attrs.frozen
class Derived(Message):
    """A validator that reads what only ``__init__`` sets: it cannot be run again alone."""

    size: int = attrs.field(validator=_non_negative)
    double: int = attrs.field(init=False, default=attrs.Factory(_double, takes_self=True))


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_a_validator_reading_another_field_is_told_at_its_field(fmt: WireFormat) -> None:
    """A method validator that compares two fields sees both when it is run again."""
    error = _error(fmt, Range, {"type": "range", "low": 5, "high": 1})
    assert str(error) == ("invalid value (ValueError: high (1) must not be below low (5)) @ $.high")


def test_a_failure_that_cannot_be_found_again_stays_at_the_object() -> None:
    """When running a validator alone fails differently, the original error stands at ``$``."""
    error = _error("json", Derived, {"type": "derived", "size": -1})
    assert str(error) == "invalid value (ValueError: size must be >= 0, got -1 (double -2)) @ $"
