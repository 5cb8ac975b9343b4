"""The AI agent's turn: status events, guideline matching, tool calls, reply, handoff."""

from baton_server.engine.engine import Engine, EngineSettings

__all__ = ["Engine", "EngineSettings"]
