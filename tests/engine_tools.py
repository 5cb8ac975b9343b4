"""Tools for engine tests, loaded with `--tools tests.engine_tools` (Settings.tool_modules)."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from baton_server.tools import ToolContext, ToolResult, tool

# Set when slow_lookup starts for a session, so tests wait on the condition, not on time.
STARTED: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)


@tool(description="A lookup that takes a minute.")
async def slow_lookup(context: ToolContext, query: str) -> ToolResult:
    STARTED[context.session_id].set()
    await asyncio.sleep(60)
    return ToolResult(data={"query": query})


@tool(description="A tool whose backend is down.")
async def broken_tool(context: ToolContext, query: str) -> ToolResult:
    raise RuntimeError("database on fire")


@tool(description="Counts the session's customer messages.")
async def count_messages(context: ToolContext, query: str, limit: int = 10) -> ToolResult:
    events = await context.read_events(0)
    customer = [e for e in events if e.kind.value == "message" and e.source.value == "customer"]
    return ToolResult(data={"customer_messages": len(customer), "limit": limit})
