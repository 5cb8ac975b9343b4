"""Python client for Baton.

    from baton_client import BatonClient

    async with BatonClient("127.0.0.1:8800") as client:
        agent = await client.agents.create("Ada")
        ...
        async for event in client.follow(session.id):
            ...

The generated code lives in the `baton.v1` package (its imports follow the proto paths):
`message_pb2` (resources and enums), `request_response_pb2` (requests and responses),
`service_pb2_grpc` (stubs). They are re-exported here as `pb`, `rr` and `svc`.
"""

from baton.v1 import message_pb2, request_response_pb2, service_pb2_grpc
from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from baton.v1 import service_pb2_grpc as svc
from baton.v1.message_pb2 import (
    Agent,
    Customer,
    Event,
    EventKind,
    EventSource,
    MessageData,
    Participant,
    Session,
    SessionMode,
    Status,
    StatusData,
    ToolCall,
    ToolData,
)
from baton_client._client import DEFAULT_CHANNEL_OPTIONS, BatonClient, Stubs, metadata_interceptors
from baton_client._follow import Follower
from baton_client._resources import Agents, Customers, Events, Sessions, enum_value
from baton_client._retry import DEFAULT_RETRY_CODES, RetriesExhausted, RetryPolicy
from baton_client.errors import error_info, error_reason, field_violations

__all__ = [
    "DEFAULT_CHANNEL_OPTIONS",
    "DEFAULT_RETRY_CODES",
    "Agent",
    "Agents",
    "BatonClient",
    "Customer",
    "Customers",
    "Event",
    "EventKind",
    "EventSource",
    "Events",
    "Follower",
    "MessageData",
    "Participant",
    "RetriesExhausted",
    "RetryPolicy",
    "Session",
    "SessionMode",
    "Sessions",
    "Status",
    "StatusData",
    "Stubs",
    "ToolCall",
    "ToolData",
    "enum_value",
    "error_info",
    "error_reason",
    "field_violations",
    "message_pb2",
    "metadata_interceptors",
    "pb",
    "request_response_pb2",
    "rr",
    "service_pb2_grpc",
    "svc",
]
