"""The public API for tool authors.

    from baton_server.tools import ToolContext, ToolResult, tool

    @tool(description="Hand the conversation to a human agent.")
    async def initiate_human_handoff(context: ToolContext, reason: str) -> ToolResult:
        return ToolResult(data={"queued": True}, control={"mode": "manual"})

Load a module of tools with `baton serve --tools mypkg.tools`.
"""

from baton_server.tools.api import Tool, ToolContext, ToolError, ToolResult, tool
from baton_server.tools.registry import ToolRegistry

__all__ = ["Tool", "ToolContext", "ToolError", "ToolRegistry", "ToolResult", "tool"]
