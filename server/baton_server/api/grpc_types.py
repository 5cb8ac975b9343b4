"""Type-only names for grpc's generic classes (strings at run time: they are not generic there)."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc

# A servicer method's context, and a method handler, whatever their message types.
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"

__all__ = ["Context", "Handler", "grpc"]
