"""Tool arguments from the customer's words (nlp/arguments.py): an order number for `order_id`,
the message for `reason`, nothing made up."""

from __future__ import annotations

from typing import Any

import pytest

from baton_server.examples import support
from baton_server.nlp.arguments import identifier, parameter_kind, tool_arguments


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("Has my order #48213 shipped?", "48213"),
        ("can you track order 77120034 for me", "77120034"),
        ("delivery update pls, order no. 1234-5678", "1234-5678"),
        ("can you check on order A-99812", "A-99812"),
        ("ETA on order 5521?", "5521"),
        ("it's 99120443", "99120443"),  # 5+ digits need no hint word
        ("#512 please", "512"),
        ("error 401 when i try to log on", None),  # 3 digits, no hint: not an order number
        ("I was charged $45.99 twice", None),
        ("it's been 2 weeks since 2024-05-01", None),
        ("order 12", None),  # too short to be one
        ("where is my parcel?", None),
    ],
)
def test_identifier(text: str, found: str | None) -> None:
    assert identifier(text) == found


@pytest.mark.parametrize(
    ("name", "schema", "kind"),
    [
        ("order_id", {"type": "string"}, "identifier"),
        ("tracking", {"type": "string"}, "identifier"),
        ("ref", {"type": "string", "description": "The booking reference"}, "identifier"),
        ("email", {"type": "string"}, "email"),
        ("contact", {"type": "string", "description": "Phone number to call back"}, "phone"),
        ("amount", {"type": "string"}, "amount"),
        ("reason", {"type": "string"}, "text"),
        ("query", {"type": "string"}, "text"),
    ],
)
def test_parameter_kind(name: str, schema: dict[str, Any], kind: str) -> None:
    assert parameter_kind(name, schema) == kind


def test_example_tools_get_the_order_number_and_the_message() -> None:
    lookup = support.check_order_status.parameters
    said = ["where is it??", "my order number is 48213"]  # newest first
    assert tool_arguments(lookup, said) == {"order_id": "48213"}
    # Nothing that looks like an order number: empty (the tool asks), not the whole message.
    assert tool_arguments(lookup, ["where is my parcel?"]) == {"order_id": ""}
    handoff = support.initiate_human_handoff.parameters
    assert tool_arguments(handoff, ["is a person around?", "older"]) == {
        "reason": "is a person around?"
    }


def test_other_kinds_and_optional_parameters() -> None:
    schema = {
        "type": "object",
        "properties": {
            "email": {"type": "string"},
            "phone": {"type": "string"},
            "amount": {"type": "string"},
            "note": {"type": "string"},
            "limit": {"type": "integer"},
        },
        "required": ["email"],
    }
    said = ["reach me at cy@example.com or +44 20 7946 0958, I paid €45.50"]
    assert tool_arguments(schema, said) == {
        "email": "cy@example.com",
        "phone": "+44 20 7946 0958",
        "amount": "€45.50",
        "note": said[0],
    }
    # Optional kind-specific parameters with nothing found are left out; required ones are "".
    assert tool_arguments(schema, ["hello"]) == {"email": "", "note": "hello"}
