"""Opaque keyset page tokens (AIP-158): the last row's (created_at_us, id) plus a filter digest."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Row, Select, and_, or_

from baton_server.domain import Page
from baton_server.errors import InvalidArgument
from baton_server.store.database import Database

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class Cursor:
    created_at_us: int
    id: str


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument.single("page_size", "must not be negative")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def _filter_digest(filters: dict[str, str]) -> str:
    text = json.dumps(filters, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode_token(cursor: Cursor, filters: dict[str, str]) -> str:
    body = {"t": cursor.created_at_us, "i": cursor.id, "f": _filter_digest(filters)}
    raw = json.dumps(body, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, filters: dict[str, str]) -> Cursor | None:
    """Returns the cursor in `token`, None for the first page; InvalidArgument if malformed."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        body = json.loads(raw)
        created_at_us, last_id, digest = body["t"], body["i"], body["f"]
        if not (type(created_at_us) is int and 0 <= created_at_us < 2**63):
            raise ValueError("cursor time out of range")
        # Only what ids are: PostgreSQL rejects NUL in text, and no database takes a lone
        # surrogate (JSON can encode both); encode() raises UnicodeEncodeError on the latter.
        if not isinstance(last_id, str) or "\x00" in last_id:
            raise ValueError("cursor id is not an id")
        last_id.encode()
        cursor = Cursor(created_at_us, last_id)
        digest = str(digest)
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError, OverflowError):
        raise InvalidArgument.single(
            "page_token", "is not a token returned by this list call; start again without it"
        ) from None
    if digest != _filter_digest(filters):
        raise InvalidArgument.single(
            "page_token", "was issued for different filters; keep the filters of the first page"
        )
    return cursor


async def keyset_page(
    database: Database,
    query: Select[Any],
    time_column: ColumnElement[int],
    id_column: ColumnElement[str],
    size: int,
    token: str,
    filters: dict[str, str],
    convert: Callable[[Row[Any]], T],
) -> Page[T]:
    """One page of `query` in (time_column, id_column) order, after the token's cursor; the
    next token names the page's last row (and is bound to `filters`)."""
    limit = page_size(size)
    cursor = decode_token(token, filters)
    if cursor is not None:
        query = query.where(
            or_(
                time_column > cursor.created_at_us,
                and_(time_column == cursor.created_at_us, id_column > cursor.id),
            )
        )
    query = query.order_by(time_column, id_column).limit(limit + 1)
    async with database.reader.connect() as conn:
        rows = (await conn.execute(query)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    token_out = ""
    if more:
        last = rows[-1]
        token_out = encode_token(
            Cursor(last._mapping[time_column], last._mapping[id_column]), filters
        )
    return Page([convert(r) for r in rows], token_out)
