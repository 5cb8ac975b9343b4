"""Helpers for the auth tests: servers with authentication on, credentials, generic calls."""

from __future__ import annotations

import datetime
import importlib
import ipaddress
import pkgutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from baton_server.cli.channel import open_channel
from baton_server.store import schema

TOKEN_SECRET = "test-secret-" + "x" * 40


def all_methods() -> list[tuple[str, MethodDescriptor]]:
    """Every RPC of every baton.v1 service, from the descriptors of every generated module
    (so RPCs and services added later, in any .proto file, are included)."""
    import baton.v1

    found: dict[str, MethodDescriptor] = {}
    for module in pkgutil.iter_modules(baton.v1.__path__):
        if not module.name.endswith("_pb2"):
            continue
        file = importlib.import_module(f"baton.v1.{module.name}").DESCRIPTOR
        for service in file.services_by_name.values():
            for method in service.methods:
                found[f"{service.full_name}/{method.name}"] = method
    return sorted(found.items())


async def invoke(channel: grpc.aio.Channel, method: MethodDescriptor, request: Any) -> Any:
    """Calls any RPC; returns the status code (OK, or the error's). Streams: the first message
    (or the end) decides, then the call is cancelled."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    response_class = message_factory.GetMessageClass(method.output_type)
    try:
        if method.server_streaming:
            call = channel.unary_stream(
                path,
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=response_class.FromString,
            )(request, timeout=5)  # a watch stream may stay silent: DEADLINE_EXCEEDED is allowed
            async for _ in call:
                break
            call.cancel()
        else:
            await channel.unary_unary(
                path,
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=response_class.FromString,
            )(request, timeout=10)
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def snapshot(database_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (small test databases): to show a call changed nothing."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return {
                table.name: sorted(
                    (tuple(map(repr, row)) for row in await conn.execute(select(table))),
                )
                for table in schema.metadata.sorted_tables
            }
    finally:
        await engine.dispose()


def retry_delay_s(error: grpc.aio.AioRpcError) -> float | None:
    status = rpc_status.from_call(error)
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info.retry_delay.ToTimedelta().total_seconds()
    return None


@dataclass
class Channels:
    """Channels carrying one credential each; closed together."""

    target: str
    opened: list[grpc.aio.Channel]

    def with_credential(self, credential: str, tls_ca: str | None = None) -> grpc.aio.Channel:
        channel = open_channel(self.target, credential, tls_ca)
        self.opened.append(channel)
        return channel

    async def close(self) -> None:
        for channel in self.opened:
            await channel.close()


# ---------------------------------------------------------------- certificates


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: bytes
    client_key: bytes
    ca_pem: bytes


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    sans: Sequence[x509.GeneralName] = (),
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer or (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_pki(folder: Path) -> Pki:
    """A test CA, a server certificate for localhost/127.0.0.1, and a client certificate."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("Baton test CA", ca_key, None, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _cert(
        "localhost",
        server_key,
        ("Baton test CA", ca_key),
        sans=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _cert("integration-client", client_key, ("Baton test CA", ca_key))
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    (folder / "ca.pem").write_bytes(ca_pem)
    (folder / "server.pem").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    (folder / "server.key").write_bytes(_pem_key(server_key))
    return Pki(
        ca=folder / "ca.pem",
        server_cert=folder / "server.pem",
        server_key=folder / "server.key",
        client_cert=client.public_bytes(serialization.Encoding.PEM),
        client_key=_pem_key(client_key),
        ca_pem=ca_pem,
    )
