"""The text rule is total: every route runs the control-character guard first, and every string
field of every request body is declared single- or multi-line text. A new route or form field
cannot forget it."""

from __future__ import annotations

import msgspec
import msgspec.inspect as mi
import pytest
from litestar.handlers import HTTPRouteHandler

from saas.app import create_app
from saas.config import load_settings
from saas.errors import InvalidInput
from saas.organizations.domains import normalize_email
from saas.web.input import (
    MULTI_LINE_PATTERN,
    SINGLE_LINE_PATTERN,
    MultiLine,
    SingleLine,
    refuse_control_characters,
)

TEXT_PATTERNS = {SINGLE_LINE_PATTERN, MULTI_LINE_PATTERN}


def route_handlers() -> list[HTTPRouteHandler]:
    app = create_app(load_settings(app_env="test"))
    return [
        handler
        for route in app.routes
        for handler in getattr(route, "route_handlers", [])
        if isinstance(handler, HTTPRouteHandler)
    ]


def string_fields(struct: type[msgspec.Struct]) -> dict[str, mi.StrType]:
    info = mi.type_info(struct)
    assert isinstance(info, mi.StructType)
    found: dict[str, mi.StrType] = {}
    for field in info.fields:
        kinds = field.type.types if isinstance(field.type, mi.UnionType) else (field.type,)
        for kind in kinds:
            if isinstance(kind, mi.StrType):
                found[field.name] = kind
    return found


def test_every_route_refuses_control_characters_before_any_other_guard() -> None:
    for handler in route_handlers():
        guards = handler.resolve_guards()
        assert guards, handler
        assert guards[0] is refuse_control_characters, handler


def test_every_string_in_every_request_body_follows_the_text_rule() -> None:
    bodies = {
        field.annotation
        for handler in route_handlers()
        if (field := handler.parsed_fn_signature.parameters.get("data")) is not None
    }
    assert len(bodies) >= 10, bodies  # the forms and the API schemas
    for body in bodies:
        assert issubclass(body, msgspec.Struct), body
        for name, kind in string_fields(body).items():
            assert kind.pattern in TEXT_PATTERNS, (body, name)


class _Probe(msgspec.Struct):
    line: SingleLine = ""
    text: MultiLine = ""


@pytest.mark.parametrize(
    "value", ["a\x00b", "a\tb", "ab\n", "a\rb", "a\x1bb", "a\x7fb", "a\x85b", "\x9f"]
)
def test_single_line_refuses_control_characters(value: str) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"line": value}, _Probe)


@pytest.mark.parametrize("value", ["a\x00b", "a\x0bb", "a\x1bb", "a\x85b"])
def test_multi_line_refuses_control_characters_but_line_breaks(value: str) -> None:
    assert msgspec.convert({"text": "one\r\ntwo\tthree\n"}, _Probe).text
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"text": value}, _Probe)


def test_printable_text_passes() -> None:
    text = "Zo\u00eb\u2019s \u201cRoadmap\u201d \U0001f680 <b> & \u4e2d\u6587"
    assert msgspec.convert({"line": text, "text": text}, _Probe).line == text


@pytest.mark.parametrize(
    "address", ["a\x00b@example.org", "a\tb@example.org", "a\u200bb@example.org", "a b@x.org"]
)
def test_email_addresses_with_control_or_invisible_characters_are_refused(address: str) -> None:
    with pytest.raises(InvalidInput):
        normalize_email(address)
