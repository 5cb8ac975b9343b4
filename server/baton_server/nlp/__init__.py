"""NLP providers behind one small interface: `offline` (deterministic) and `openai`."""

from baton_server.nlp.base import (
    GuidelineMatch,
    NLPProvider,
    ProviderError,
    ToolCallPlan,
    TurnContext,
)

__all__ = ["GuidelineMatch", "NLPProvider", "ProviderError", "ToolCallPlan", "TurnContext"]
