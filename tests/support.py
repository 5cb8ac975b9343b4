"""Test helpers: a real server (in-process or as a `baton serve` process) and typed stubs."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from baton.v1 import service_pb2_grpc as svc

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Stubs:
    channel: grpc.aio.Channel
    agents: svc.AgentServiceStub
    customers: svc.CustomerServiceStub
    sessions: svc.SessionServiceStub
    events: svc.EventServiceStub
    handoffs: svc.HandoffServiceStub
    auth: svc.AuthServiceStub
    tools: svc.ToolServiceStub
    tool_workers: svc.ToolWorkerServiceStub

    @classmethod
    def on(cls, channel: grpc.aio.Channel) -> Stubs:
        return cls(
            channel,
            svc.AgentServiceStub(channel),
            svc.CustomerServiceStub(channel),
            svc.SessionServiceStub(channel),
            svc.EventServiceStub(channel),
            svc.HandoffServiceStub(channel),
            svc.AuthServiceStub(channel),
            svc.ToolServiceStub(channel),
            svc.ToolWorkerServiceStub(channel),
        )

    async def new_session(self, **session_fields: Any) -> pb.Session:
        agent = await self.agents.CreateAgent(rr.CreateAgentRequest(agent=pb.Agent(name="Ada")))
        customer = await self.customers.CreateCustomer(
            rr.CreateCustomerRequest(customer=pb.Customer(name="Cy"))
        )
        response = await self.sessions.CreateSession(
            rr.CreateSessionRequest(
                session=pb.Session(
                    agent_id=agent.agent.id, customer_id=customer.customer.id, **session_fields
                )
            )
        )
        return response.session

    async def customer_token(self, customer_id: str) -> str:
        issued = await self.auth.IssueCustomerToken(
            rr.IssueCustomerTokenRequest(customer_id=customer_id)
        )
        return issued.token

    async def say(self, session_id: str, text: str, **extra: Any) -> pb.Event:
        response = await self.events.CreateEvent(customer_message(session_id, text, **extra))
        return response.event


def customer_message(session_id: str, text: str, **extra: Any) -> rr.CreateEventRequest:
    return rr.CreateEventRequest(
        session_id=session_id,
        kind=pb.EVENT_KIND_MESSAGE,
        source=pb.EVENT_SOURCE_CUSTOMER,
        message=pb.MessageData(text=text),
        **extra,
    )


def bad_request_fields(error: grpc.aio.AioRpcError) -> list[str]:
    """Field names from the google.rpc.BadRequest detail of an error."""
    status = rpc_status.from_call(error)
    assert status is not None, "error carries no google.rpc.Status details"
    fields = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields += [v.field for v in bad.field_violations]
    return fields


def error_reason(error: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(error)
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    raise AssertionError("no ErrorInfo detail")


async def collect(
    stream: AsyncIterator[rr.ListEventsResponse],
    *,
    until_offset: int | None = None,
    until_caught_up: bool = False,
    timeout: float = 20.0,
) -> tuple[list[pb.Event], list[rr.ListEventsResponse]]:
    """Reads a ListEvents stream until it ends, a given offset arrived, or caught_up."""
    events: list[pb.Event] = []
    responses: list[rr.ListEventsResponse] = []
    async with asyncio.timeout(timeout):
        async for response in stream:
            responses.append(response)
            events.extend(response.events)
            if until_caught_up and response.caught_up:
                break
            if until_offset is not None and events and events[-1].offset >= until_offset:
                break
    return events, responses


async def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(interval)


class ServerProcess:
    """`baton serve` as a real process (for signals and restarts)."""

    def __init__(
        self, database_url: str, *extra_args: str, env: dict[str, str] | None = None
    ) -> None:
        self.database_url = database_url
        self.extra_args = extra_args
        self.env = env or {}
        self.process: subprocess.Popen[str] | None = None
        self.port = 0
        # What the server printed up to "listening on".
        self.output: list[str] = []

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "baton_server",
            "serve",
            "--port",
            "0",
            "--database",
            self.database_url,
            "--log-level",
            "INFO",
            # No authentication: these tests are about processes, not credentials.
            "--dev",
            *self.extra_args,
        ]

    def environment(self) -> dict[str, str]:
        return dict(os.environ, PYTHONUNBUFFERED="1") | self.env

    def start(self, timeout: float = 30.0) -> int:
        self.process = subprocess.Popen(
            self.argv(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.environment(),
            cwd=ROOT,
        )
        deadline = time.monotonic() + timeout
        assert self.process.stdout is not None
        self.output = []
        lines = self.output
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            lines.append(line)
            match = re.search(r"listening on [^:]+:(\d+)", line)
            if match:
                self.port = int(match.group(1))
                return self.port
        self.kill()
        raise AssertionError("server did not start:\n" + "".join(lines))

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


async def follow_while_not_reading(
    port: int, baton: Stubs, session_id: str, appends: int = 200
) -> tuple[list[pb.Event], list[rr.ListEventsResponse]]:
    """Follows `session_id` without reading while `appends` events of 4 KiB are appended, then
    reads them all: what a subscriber that falls behind gets (events, responses)."""
    # Its own connection with a fixed 64 KiB flow-control window (no BDP probing, which would
    # grow it), so that not reading really makes the server wait and its buffer overflow.
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{port}", options=[("grpc.http2.bdp_probe", 0)]
    ) as channel:
        slow = Stubs.on(channel)
        stream = slow.events.ListEvents(rr.ListEventsRequest(session_id=session_id, follow=True))
        await collect(stream, until_caught_up=True)
        padding = "x" * 4096
        await asyncio.gather(*(baton.say(session_id, f"m{i} {padding}") for i in range(appends)))
        events, responses = await collect(stream, until_offset=appends)
        stream.cancel()
    return events, responses
