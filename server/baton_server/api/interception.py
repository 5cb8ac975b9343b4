"""What both server interceptors do to a handler: wrap its behaviour, take over decoding."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from baton_server.api.grpc_types import Handler

Wrap = Callable[[Any], Any]


def rewrapped(handler: Handler, unary: Wrap, stream: Wrap, bidi: Wrap | None = None) -> Handler:
    """`handler` with its unary-unary or unary-stream behaviour wrapped, receiving the raw request
    bytes (`request_deserializer=None`: the wrapper decodes), and likewise its stream-stream
    behaviour wrapped by `bidi` (receiving the request bytes one by one). Other kinds are
    returned as is."""
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            unary(handler.unary_unary),
            request_deserializer=None,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            stream(handler.unary_stream),
            request_deserializer=None,
            response_serializer=handler.response_serializer,
        )
    if handler.stream_stream is not None and bidi is not None:
        return grpc.stream_stream_rpc_method_handler(
            bidi(handler.stream_stream),
            request_deserializer=None,
            response_serializer=handler.response_serializer,
        )
    return handler
