"""Python client for Baton.

    from baton_client import BatonClient

    async with BatonClient("127.0.0.1:8800", api_key="bk_key_...") as client:
        agent = await client.agents.create("Ada")
        ...
        async for event in client.follow(session.id):
            ...

Serving tools to agents from this process: `worker_tool` and `ToolWorker` (see the README).

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
    Guideline,
    Handoff,
    HandoffChange,
    HandoffChangeType,
    HandoffOutcome,
    HandoffState,
    MessageData,
    MessageDelta,
    Participant,
    Session,
    SessionMode,
    Status,
    StatusData,
    ToolCall,
    ToolData,
)
from baton_client._client import (
    DEFAULT_CHANNEL_OPTIONS,
    RETRYABLE_METHODS,
    BatonClient,
    Stubs,
    channel_credentials,
    is_loopback,
    service_config,
    tls_credentials,
)
from baton_client._credentials import Credentials, Token, TokenProvider
from baton_client._follow import Follower
from baton_client._handoffs import Auth, Guidelines, Handoffs, HandoffWatcher, Tools
from baton_client._interceptors import metadata_interceptors
from baton_client._resources import Agents, Customers, Events, Sessions, enum_value
from baton_client._retry import DEFAULT_RETRY_CODES, RetriesExhausted, RetryPolicy
from baton_client._worker_tools import (
    ToolResult,
    WorkerCall,
    WorkerTool,
    handoff,
    parameters_schema,
    worker_tool,
)
from baton_client._workers import WORKER_RETRY_CODES, HeartbeatLost, ToolWorker
from baton_client.errors import (
    Aborted,
    AlreadyExists,
    BatonError,
    Cancelled,
    DataLoss,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    UnknownError,
    as_baton_error,
    error_info,
    error_reason,
    field_violations,
    retry_delay,
)

__version__ = "0.2.0"

__all__ = [
    "DEFAULT_CHANNEL_OPTIONS",
    "DEFAULT_RETRY_CODES",
    "RETRYABLE_METHODS",
    "WORKER_RETRY_CODES",
    "Aborted",
    "Agent",
    "Agents",
    "AlreadyExists",
    "Auth",
    "BatonClient",
    "BatonError",
    "Cancelled",
    "Credentials",
    "Customer",
    "Customers",
    "DataLoss",
    "DeadlineExceeded",
    "Event",
    "EventKind",
    "EventSource",
    "Events",
    "FailedPrecondition",
    "Follower",
    "Guideline",
    "Guidelines",
    "Handoff",
    "HandoffChange",
    "HandoffChangeType",
    "HandoffOutcome",
    "HandoffState",
    "HandoffWatcher",
    "Handoffs",
    "HeartbeatLost",
    "Internal",
    "InvalidArgument",
    "MessageData",
    "MessageDelta",
    "NotFound",
    "OutOfRange",
    "Participant",
    "PermissionDenied",
    "ResourceExhausted",
    "RetriesExhausted",
    "RetryPolicy",
    "Session",
    "SessionMode",
    "Sessions",
    "Status",
    "StatusData",
    "Stubs",
    "Token",
    "TokenProvider",
    "ToolCall",
    "ToolData",
    "ToolResult",
    "ToolWorker",
    "Tools",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "UnknownError",
    "WorkerCall",
    "WorkerTool",
    "as_baton_error",
    "channel_credentials",
    "enum_value",
    "error_info",
    "error_reason",
    "field_violations",
    "handoff",
    "is_loopback",
    "message_pb2",
    "metadata_interceptors",
    "parameters_schema",
    "pb",
    "request_response_pb2",
    "retry_delay",
    "rr",
    "service_config",
    "service_pb2_grpc",
    "svc",
    "tls_credentials",
    "worker_tool",
]
