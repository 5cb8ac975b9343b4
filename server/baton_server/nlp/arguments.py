"""Tool arguments from what the customer wrote, where a parameter says what it wants.

A parameter's name and JSON Schema description decide its kind: an identifier (`order_id`,
"tracking number", "invoice reference") gets the order-number-like token of the message, an email
or phone parameter the address or number found, an amount the sum of money; any other string
parameter (`reason`, `query`, ...) the customer's message itself. A kind-specific parameter with
nothing found in the recent messages gets "" (the tool can ask for it), not the whole message.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

_NAME_WORDS = re.compile(r"[a-z]+|[0-9]+")
IDENTIFIER_WORDS = frozenset(
    "id ids number no num code reference ref tracking order invoice booking ticket "
    "confirmation parcel shipment case".split()
)
_KINDS = (
    ("email", frozenset({"email", "mail"})),
    ("phone", frozenset({"phone", "mobile", "telephone", "tel"})),
    ("amount", frozenset({"amount", "price", "total", "sum", "cost"})),
    ("identifier", IDENTIFIER_WORDS),
)

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
PHONE = re.compile(r"(?<![\w+])\+?\d[\d ()-]{6,}\d(?!\w)")
AMOUNT = re.compile(
    r"(?:[$€£]\s?\d[\d,]*(?:\.\d{1,2})?|\d[\d,]*(?:\.\d{1,2})?\s?(?:[$€£]|eur|usd|gbp|dollars?|euros?|pounds?)\b)",
    re.IGNORECASE,
)
# Order-number-like tokens: optional '#', up to 4 letters, an optional dash, then digits and dashes.
_TOKEN = re.compile(
    r"(?<![\w$€£.,/:-])(#)?([A-Za-z]{0,4}-?\d[\d-]*\d|[A-Za-z]{0,4}-?\d)(?![\w/:%€£$]|[.,]\d)"
)
_DATE = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}$")


def parameter_kind(name: str, schema: dict[str, Any]) -> str:
    """'email', 'phone', 'amount', 'identifier' or 'text', from the name and description."""
    words = set(_NAME_WORDS.findall(f"{name} {schema.get('description', '')}".lower()))
    for kind, hints in _KINDS:
        if words & hints:
            return kind
    return "text"


def identifier(text: str, hints: frozenset[str] = IDENTIFIER_WORDS) -> str | None:
    """The most order-number-like token of `text`: digits (3+), maybe with a short letter prefix
    and dashes; it must follow a hint word ("order 5521", "order no. 1234-5678") or a '#', or
    have 5+ digits, so that "error 401" or "2 weeks" are not taken for one."""
    best: tuple[int, int, str] | None = None
    for match in _TOKEN.finditer(text):
        token = match.group(2)
        digits = sum(ch.isdigit() for ch in token)
        if digits < 3 or _DATE.match(token):
            continue
        before = _NAME_WORDS.findall(text[: match.start()].lower())[-3:]
        score = 2 * bool(set(before) & hints) + bool(match.group(1)) + (digits >= 5)
        if score and (best is None or score > best[0]):
            best = (score, -match.start(), token)
    return None if best is None else best[2]


def extract(kind: str, text: str) -> str | None:
    if kind == "email":
        found = EMAIL.search(text)
    elif kind == "phone":
        found = PHONE.search(text)
    elif kind == "amount":
        found = AMOUNT.search(text)
    elif kind == "identifier":
        return identifier(text)
    else:
        return text
    return found.group(0).strip() if found else None


def tool_arguments(parameters: dict[str, Any], messages: Sequence[str]) -> dict[str, Any]:
    """String arguments for a tool's JSON Schema `parameters`, from the customer's recent
    `messages` (newest first: a value in the newest wins). Free text is the newest message."""
    arguments: dict[str, Any] = {}
    required = set(parameters.get("required", ()))
    for name, schema in parameters.get("properties", {}).items():
        if schema.get("type") != "string":
            continue
        kind = parameter_kind(name, schema)
        value = next((v for m in messages if (v := extract(kind, m)) is not None), None)
        if value is not None:
            arguments[name] = value
        elif name in required:
            arguments[name] = ""
    return arguments
