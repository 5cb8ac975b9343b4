"""Builds the grpc.aio server: servicers, health, reflection, channel options."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from baton_server.api.auth import AuthServicer
from baton_server.api.auth_interceptor import AuthInterceptor
from baton_server.api.behaviour import CannedResponseServicer, GuidelineServicer, ToolServicer
from baton_server.api.errors import ErrorMappingInterceptor
from baton_server.api.events import EventServicer, serialize_response
from baton_server.api.grpc_types import Handler
from baton_server.api.handoffs import HandoffServicer
from baton_server.api.observing import CallObserver
from baton_server.api.protos import rr, svc, svc_grpc
from baton_server.api.resources import AgentServicer, CustomerServicer, SessionServicer
from baton_server.api.tool_workers import ToolWorkerServicer
from baton_server.config import Settings

SERVICE_NAMES = tuple(service.full_name for service in svc.DESCRIPTOR.services_by_name.values())


def server_options(settings: Settings) -> list[tuple[str, int]]:
    options = [
        # Thousands of follow streams may open at once (e.g. after a deploy): do not cancel
        # requests that wait to be matched to a handler.
        ("grpc.server.max_pending_requests", 1_000_000),
        ("grpc.server.max_pending_requests_hard_limit", 1_000_000),
        ("grpc.server_max_unrequested_time_in_server", 600),
        ("grpc.max_concurrent_streams", settings.max_streams_per_connection),
        # Long-lived streams: ping idle connections to detect dead peers, and let clients ping
        # every 10 s without being cut off for "too many pings".
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.http2.max_ping_strikes", 0),
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
    ]
    if settings.max_connection_age_s > 0:
        options += [
            ("grpc.max_connection_age_ms", int(settings.max_connection_age_s * 1000)),
            ("grpc.max_connection_age_grace_ms", int(settings.shutdown_grace_s * 1000)),
        ]
    return options


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS credentials from the configured PEM files (None: plaintext). With a client CA the
    server requires and verifies client certificates (mutual TLS)."""
    if not settings.tls_cert_file and not settings.tls_key_file:
        if settings.tls_client_ca_file:
            raise ValueError("--tls-client-ca needs --tls-cert and --tls-key")
        return None
    if not (settings.tls_cert_file and settings.tls_key_file):
        raise ValueError("TLS needs both --tls-cert and --tls-key")
    cert = Path(settings.tls_cert_file).read_bytes()
    key = Path(settings.tls_key_file).read_bytes()
    client_ca = (
        Path(settings.tls_client_ca_file).read_bytes() if settings.tls_client_ca_file else None
    )
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def add_event_service(servicer: EventServicer, server: grpc.aio.Server) -> None:
    """As the generated add_EventServiceServicer_to_server, but both methods may answer with
    pre-serialized responses (events as the bytes stored at append)."""
    handlers: dict[str, Handler] = {
        "CreateEvent": grpc.unary_unary_rpc_method_handler(
            servicer.CreateEvent,
            request_deserializer=rr.CreateEventRequest.FromString,
            response_serializer=serialize_response,
        ),
        "ListEvents": grpc.unary_stream_rpc_method_handler(
            servicer.ListEvents,
            request_deserializer=rr.ListEventsRequest.FromString,
            response_serializer=serialize_response,
        ),
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("baton.v1.EventService", handlers),)
    )


@dataclass(frozen=True, slots=True)
class Servicers:
    """Every baton.v1 servicer, built by the composition root (app.py)."""

    agents: AgentServicer
    customers: CustomerServicer
    sessions: SessionServicer
    events: EventServicer
    handoffs: HandoffServicer
    guidelines: GuidelineServicer
    canned_responses: CannedResponseServicer
    tools: ToolServicer
    auth: AuthServicer
    tool_workers: ToolWorkerServicer


def build_server(
    settings: Settings,
    servicers: Servicers,
    health_servicer: health.aio.HealthServicer,
    auth: AuthInterceptor | None,
    observer: CallObserver | None = None,
) -> grpc.aio.Server:
    """`auth` None: no authentication (--dev). The error mapping wraps it, so auth errors get
    the same rich statuses as all others; it also hands each call's status and duration to
    `observer` (metrics, spans, access log) when there is one."""
    interceptors: list[grpc.aio.ServerInterceptor] = [ErrorMappingInterceptor(observer)]
    if auth is not None:
        interceptors.append(auth)
    real = grpc.aio.server(interceptors=interceptors, options=server_options(settings))
    server = cast(grpc.aio.Server, GenericHandlersOnly(real))
    svc_grpc.add_AgentServiceServicer_to_server(servicers.agents, server)
    svc_grpc.add_CustomerServiceServicer_to_server(servicers.customers, server)
    svc_grpc.add_SessionServiceServicer_to_server(servicers.sessions, server)
    add_event_service(servicers.events, server)
    svc_grpc.add_HandoffServiceServicer_to_server(servicers.handoffs, server)
    svc_grpc.add_GuidelineServiceServicer_to_server(servicers.guidelines, server)
    svc_grpc.add_CannedResponseServiceServicer_to_server(servicers.canned_responses, server)
    svc_grpc.add_ToolServiceServicer_to_server(servicers.tools, server)
    svc_grpc.add_AuthServiceServicer_to_server(servicers.auth, server)
    svc_grpc.add_ToolWorkerServiceServicer_to_server(servicers.tool_workers, server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (
            *SERVICE_NAMES,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    return real


class GenericHandlersOnly:
    """Hands the generated `add_*_to_server` functions only the generic (by method name)
    handlers. grpcio 1.85's aio server multiplexes registered methods with an asyncio.wait over
    one task per method on every incoming call (grpc/grpc#43461): with Baton's ~50 methods that
    took 12-15% of the server's CPU under load. The same calls route by name instead."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(
        self, generic_rpc_handlers: Sequence[grpc.GenericRpcHandler]
    ) -> None:
        self._server.add_generic_rpc_handlers(generic_rpc_handlers)

    def add_registered_method_handlers(self, service_name: str, handlers: object) -> None:
        """Left out on purpose (see the class)."""
