"""Untrusted text reaches the operator's terminal inert: control characters are shown, not
obeyed, and Rich markup in it prints literally (`baton tail`, `baton chat`, `baton stats`)."""

from __future__ import annotations

import asyncio
import io
import os
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from google.protobuf import struct_pb2
from rich.console import Console

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from baton_server.cli import describe_event
from baton_server.cli.stats import stats_table
from baton_server.cli.terminal_text import visible
from baton_server.domain import EventDraft, EventKind, EventSource
from baton_server.nlp.offline import OfflineProvider
from tests.support import ROOT

# Every character a terminal (or its bidi algorithm) acts on, by the classes `visible` covers.
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

ERASE_LINE = "\x1b[2K"
CLIPBOARD = "\x1b]52;c;ZXZpbA==\x07"
TITLE = "\x1b]0;pwned\x07"
C1_CSI = "\x9b31m"
MARKUP = "[link=http://x]x[/link] [bold red]loud[/bold red] :warning:"

# One string with all of them (no NUL: no backend stores it) and some ordinary non-ASCII text.
HOSTILE = (
    f"before{ERASE_LINE}forged {CLIPBOARD} {TITLE} {C1_CSI}red over\rwrite "
    f"bidi \u202eevil\u202c {MARKUP} café 日本"
)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (ERASE_LINE, "\\x1b[2K"),
        (CLIPBOARD, "\\x1b]52;c;ZXZpbA==\\x07"),
        (TITLE, "\\x1b]0;pwned\\x07"),
        (C1_CSI, "\\x9b31m"),
        ("new\rline", "new\\x0dline"),
        ("nul\x00 del\x7f bs\x08 nel\x85", "nul\\x00 del\\x7f bs\\x08 nel\\x85"),
        ("abc \u202eevil\u202c", "abc \\u202eevil\\u202c"),
        (
            "\u202a\u202b\u202d \u2066\u2067\u2068\u2069",
            "\\u202a\\u202b\\u202d \\u2066\\u2067\\u2068\\u2069",
        ),
    ],
)
def test_control_characters_are_shown_not_emitted(raw: str, shown: str) -> None:
    assert visible(raw) == shown
    assert not UNSAFE.search(visible(raw))


def test_every_character_of_the_unsafe_classes_is_made_visible() -> None:
    for code in [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), *range(0x202A, 0x202F)]:
        if chr(code) in "\n\t":
            continue
        assert visible(chr(code)) == (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    for code in range(0x2066, 0x206A):
        assert visible(chr(code)) == f"\\u{code:04x}"


@pytest.mark.parametrize(
    "text",
    [
        "plain words, 42 % [not markup] \\ back\\slash",
        "café, naïve, 日本語, עברית, العربية, emoji 🙂",
        "two\nlines\tand a tab",
        MARKUP,  # markup is not `visible`'s business: the print sites escape it
        "",
    ],
)
def test_ordinary_text_is_unchanged(text: str) -> None:
    assert visible(text) == text


def _event(**data: Any) -> pb.Event:
    event = pb.Event(offset=3, **data)
    event.created_at.GetCurrentTime()
    return event


@pytest.mark.parametrize(
    "event",
    [
        _event(
            kind=pb.EVENT_KIND_MESSAGE,
            source=pb.EVENT_SOURCE_CUSTOMER,
            message=pb.MessageData(text=HOSTILE, participant=pb.Participant(display_name=HOSTILE)),
        ),
        _event(
            kind=pb.EVENT_KIND_STATUS,
            source=pb.EVENT_SOURCE_AI_AGENT,
            status=pb.StatusData(status=pb.STATUS_ERROR, detail=HOSTILE),
        ),
        _event(
            kind=pb.EVENT_KIND_TOOL,
            source=pb.EVENT_SOURCE_AI_AGENT,
            tool=pb.ToolData(tool_calls=[pb.ToolCall(name=HOSTILE), pb.ToolCall(name=HOSTILE)]),
        ),
    ],
    ids=["message", "status", "tool"],
)
def test_event_lines_show_untrusted_fields_visibly(event: pb.Event) -> None:
    line = describe_event(event)
    assert not UNSAFE.search(line)
    assert visible(HOSTILE) in line


def test_custom_event_lines_show_keys_and_values_visibly() -> None:
    custom = struct_pb2.Struct()
    custom.update({HOSTILE: HOSTILE, "nested": [HOSTILE]})
    line = describe_event(_event(kind=pb.EVENT_KIND_CUSTOM, custom=custom))
    assert not UNSAFE.search(line)
    assert "\\x9b31m" in line and "\\u202eevil" in line and MARKUP in line


def test_stats_show_reasons_and_outcomes_visibly() -> None:
    stats = pb.HandoffStats(by_reason={HOSTILE: 1}, by_outcome={HOSTILE: 2})
    out = io.StringIO()
    Console(file=out, width=400, emoji=False).print(stats_table(stats, f"title {HOSTILE}"))
    printed = out.getvalue()
    assert not UNSAFE.search(printed)
    assert f"outcome {visible(HOSTILE)}" in printed
    assert printed.count(MARKUP) == 3  # title, reason, outcome: markup printed literally


# ---------------------------------------------------------------- the commands, end to end


def _cli_env() -> dict[str, str]:
    """The environment of a CLI process writing to a pipe: no forced colours (so any ESC in
    its output came from the data)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS")
    }
    return {**env, "PYTHONUNBUFFERED": "1"}


def _assert_inert(out: bytes) -> str:
    """The output carries no control byte a terminal would obey; returns it decoded."""
    assert b"\x1b" not in out and b"\x07" not in out and b"\r" not in out, out
    text = out.decode()
    assert not UNSAFE.search(text), text
    return text


async def test_tail_prints_hostile_event_data_inert(start_server) -> None:  # type: ignore[no-untyped-def]
    app, baton = await start_server()
    session = await baton.new_session()
    # The API refuses control characters in what callers send, but models and tools write
    # text too (and older logs may hold some): store hostile events as the engine would.
    drafts = {
        "custom": EventDraft(
            EventKind.CUSTOM, EventSource.SYSTEM, {"type": "crm.note", "note": HOSTILE}
        ),
        "message": EventDraft(EventKind.MESSAGE, EventSource.AI_AGENT, {"text": HOSTILE}),
        "display name": EventDraft(
            EventKind.MESSAGE,
            EventSource.HUMAN_AGENT,
            {"text": "hello", "participant": {"id": "c", "display_name": HOSTILE}},
        ),
        "status detail": EventDraft(
            EventKind.STATUS, EventSource.AI_AGENT, {"status": "processing", "detail": HOSTILE}
        ),
        "tool name": EventDraft(
            EventKind.TOOL,
            EventSource.SYSTEM,
            {"tool_calls": [{"name": HOSTILE, "arguments": {}}]},
        ),
    }
    for draft in drafts.values():
        await app.repository.append_event(session.id, draft)
    stored = [name for name in drafts if name != "custom"]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "baton_server",
        "tail",
        session.id,
        "--from",
        "0",
        "--no-follow",
        "--target",
        f"127.0.0.1:{app.port}",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env=_cli_env(),
    )
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, out
    text = _assert_inert(out)
    custom_line = next(line for line in text.splitlines() if "crm.note" in line)
    # JSON escapes C0 characters itself; C1 and bidi characters are left to `visible`.
    assert "\\x9b31m" in custom_line and "\\u202eevil\\u202c" in custom_line
    assert MARKUP in custom_line and "café 日本" in custom_line
    # Every other field the server stored shows the whole hostile string, visibly, on one line.
    assert text.count(visible(HOSTILE)) == len(stored)
    assert len(text.strip().splitlines()) == 2 + len(stored)  # session start, custom, others


class HostileProvider(OfflineProvider):
    """Streams and then writes a hostile reply, once the test opens the gate (so the chat is
    surely following live when the deltas are published)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def write_reply(
        self, context: Any, matches: Any, outcomes: Any, on_delta: Callable[[str], None]
    ) -> str:
        await self.gate.wait()
        # Split inside the escape sequences: each delta is printed as it arrives.
        for start in range(0, len(HOSTILE), 7):
            on_delta(HOSTILE[start : start + 7])
        return HOSTILE


async def test_chat_prints_hostile_deltas_and_replies_inert(start_server) -> None:  # type: ignore[no-untyped-def]
    provider = HostileProvider()
    app, baton = await start_server(engine_enabled=True, example_agent=True, provider=provider)
    customer = await baton.customers.CreateCustomer(
        rr.CreateCustomerRequest(customer=pb.Customer(name="Cy"))
    )
    session = (
        await baton.sessions.CreateSession(
            rr.CreateSessionRequest(
                session=pb.Session(agent_id=app.example_agent_id, customer_id=customer.customer.id)
            )
        )
    ).session
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "baton_server",
        "chat",
        session.id,
        "--turn-timeout",
        "30",
        "--target",
        f"127.0.0.1:{app.port}",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env=_cli_env(),
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        # One message, then end of input: the chat exits once the agent's turn is over.
        process.stdin.write(b"hello\n")
        await process.stdin.drain()
        process.stdin.close()
        out = b""
        async with asyncio.timeout(30):
            while not re.search(rb"status +typing", out):
                chunk = await process.stdout.read(4096)
                assert chunk, f"chat ended before the agent typed:\n{out.decode()}"
                out += chunk
            provider.gate.set()
            out += await process.stdout.read()
            assert await process.wait() == 0, out
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = _assert_inert(out)
    assert f"ai_agent (typing): {visible(HOSTILE)}" in text  # the deltas
    assert f"ai_agent: {visible(HOSTILE)}" in text  # the stored reply


def test_a_message_cannot_forge_a_line_of_its_own() -> None:
    forged = "ok\n#4     12:00:00.000 human_agent message Olga: refund approved"
    line = describe_event(
        _event(
            kind=pb.EVENT_KIND_MESSAGE,
            source=pb.EVENT_SOURCE_CUSTOMER,
            message=pb.MessageData(text=forged),
        )
    )
    first, second = line.split("\n")
    assert first.startswith("#3 ") and first.endswith("customer: ok")
    assert not second.startswith("#"), "continuation lines are marked as such"
