"""Authentication and authorization against a real server: every RPC × every role, customer
tokens confined to their customer, expired/tampered tokens and revoked keys, the audit actor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2, message_factory
from google.protobuf.descriptor import MethodDescriptor
from typer.testing import CliRunner

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from baton.v1 import service_pb2_grpc as svc
from baton_server.app import BatonApp
from baton_server.auth.principal import Role
from baton_server.auth.tokens import CustomerTokens
from baton_server.cli import app as cli_app
from baton_server.config import Settings
from tests.auth_support import TOKEN_SECRET, Channels, all_methods, invoke, snapshot
from tests.support import Stubs, collect, customer_message, error_reason

OK = grpc.StatusCode.OK
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
DENIED = grpc.StatusCode.PERMISSION_DENIED
ROLES = ("anonymous", "operator", "customer", "integration", "tool_worker", "admin")

_INTEGRATION = frozenset({"integration"})
_STAFF = frozenset({"integration", "operator"})
_EVERYONE = frozenset({"integration", "operator", "customer"})
# Who (besides admin, who may do everything) is allowed each RPC *with the request the matrix
# sends*: a customer message to the customer's own session, own ids for reads. Written out here,
# independently of the server's table; an RPC missing here is expected to be admin-only.
ALLOWED: dict[str, frozenset[str]] = {
    **{
        f"baton.v1.{service}/{verb}{plural if verb == 'List' else noun}": _INTEGRATION
        for service, noun, plural in (
            ("AgentService", "Agent", "Agents"),
            ("CustomerService", "Customer", "Customers"),
            ("GuidelineService", "Guideline", "Guidelines"),
            ("CannedResponseService", "CannedResponse", "CannedResponses"),
        )
        for verb in ("Create", "Get", "List", "Update", "Delete")
    },
    "baton.v1.SessionService/CreateSession": frozenset({"integration", "customer"}),
    "baton.v1.SessionService/GetSession": _EVERYONE,
    "baton.v1.SessionService/ListSessions": _EVERYONE,
    "baton.v1.SessionService/UpdateSession": _INTEGRATION,
    "baton.v1.SessionService/DeleteSession": _INTEGRATION,
    # A customer-source message: operators may only post human-agent messages.
    "baton.v1.EventService/CreateEvent": frozenset({"integration", "customer"}),
    "baton.v1.EventService/ListEvents": _EVERYONE,
    "baton.v1.ToolService/ListTools": _INTEGRATION,
    # A tool worker's key serves tools and may do nothing else.
    "baton.v1.ToolWorkerService/ServeTools": frozenset({"tool_worker"}),
    "baton.v1.AuthService/IssueCustomerToken": _INTEGRATION,
    # Being added on the handoff branch: the expectations are ready for it.
    **{f"baton.v1.HandoffService/{m}": _INTEGRATION for m in ("RequestHandoff", "OfferHandoff")},
    **{
        f"baton.v1.HandoffService/{m}": _STAFF
        for m in (
            "GetHandoff",
            "ListHandoffs",
            "ClaimHandoff",
            "RespondToOffer",
            "ReleaseHandoff",
            "TransferHandoff",
            "WatchHandoffs",
            "GetHandoffStats",
        )
    },
}


@dataclass
class Secured:
    app: BatonApp
    database_url: str
    channels: Channels
    secrets: dict[str, str]
    key_ids: dict[str, str]
    agent_id: str
    customer_id: str
    session_id: str
    other_customer_id: str
    other_session_id: str

    def channel(self, role: str) -> grpc.aio.Channel:
        return self.channels.with_credential(self.secrets.get(role, ""))

    def stubs(self, role: str) -> Stubs:
        return Stubs.on(self.channel(role))


@pytest.fixture
async def secured(settings: Settings) -> AsyncIterator[Secured]:
    """A server with authentication on, keys for each role, two customers with a session each,
    and customer A's token."""
    app = BatonApp(replace(settings, dev_mode=False, token_secret=TOKEN_SECRET))
    port = await app.start()
    channels = Channels(f"127.0.0.1:{port}", [])
    try:
        assert app.keys is not None
        secrets: dict[str, str] = {}
        key_ids: dict[str, str] = {}
        for role in (Role.ADMIN, Role.INTEGRATION, Role.OPERATOR, Role.TOOL_WORKER):
            key, secret = await app.keys.create(role, f"test {role.value}")
            secrets[role.value], key_ids[role.value] = secret, key.id
        backend = Stubs.on(channels.with_credential(secrets["integration"]))
        session = await backend.new_session()
        other = await backend.new_session()
        issued = await svc.AuthServiceStub(backend.channel).IssueCustomerToken(
            rr.IssueCustomerTokenRequest(customer_id=session.customer_id)
        )
        secrets["customer"] = issued.token
        yield Secured(
            app,
            settings.database_url,
            channels,
            secrets,
            key_ids,
            session.agent_id,
            session.customer_id,
            session.id,
            other.customer_id,
            other.id,
        )
    finally:
        await channels.close()
        await app.stop(grace=1.0)


def matrix_request(name: str, method: MethodDescriptor, ctx: Secured) -> Any:
    """A plausible request: own ids for reads and creates, unknown ids for deletes."""
    request = message_factory.GetMessageClass(method.input_type)()
    if name == "baton.v1.EventService/CreateEvent":
        return customer_message(ctx.session_id, "matrix")
    if name == "baton.v1.SessionService/CreateSession":
        request.session.agent_id = ctx.agent_id
        request.session.customer_id = ctx.customer_id
        return request
    ids = {"session_id": ctx.session_id, "customer_id": ctx.customer_id, "agent_id": ctx.agent_id}
    for field in method.input_type.fields:
        if field.name.endswith("_id") and field.type == field.TYPE_STRING:
            destructive = method.name.startswith("Delete")
            setattr(request, field.name, "x_missing" if destructive else ids.get(field.name, "x"))
    return request


async def test_every_rpc_for_every_role(secured: Secured) -> None:
    methods = all_methods()
    assert len(methods) >= 29 and "baton.v1.AuthService/IssueCustomerToken" in dict(methods)
    for role in ROLES:
        channel = secured.channel(role)
        for name, method in methods:
            allowed = role == "admin" or role in ALLOWED.get(name, frozenset())
            request = matrix_request(name, method, secured)
            before = None if allowed else await snapshot(secured.database_url)
            code = await invoke(channel, method, request)
            if allowed:
                assert code not in (UNAUTHENTICATED, DENIED), (role, name, code)
                continue
            expected = UNAUTHENTICATED if role == "anonymous" else DENIED
            assert code == expected, (role, name, code)
            assert await snapshot(secured.database_url) == before, (role, name)


async def test_health_and_reflection_need_no_credentials(secured: Secured) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    channel = secured.channel("anonymous")
    health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def ask() -> AsyncIterator[Any]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    async for response in stub.ServerReflectionInfo(ask()):
        names = {s.name for s in response.list_services_response.service}
        assert "baton.v1.AuthService" in names
        break


async def test_missing_and_malformed_credentials_say_what_to_do(secured: Secured) -> None:
    for credential in ("", "bk_key_nope_00", "not-a-token"):
        stubs = secured.stubs("anonymous")
        if credential:
            stubs = Stubs.on(secured.channels.with_credential(credential))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stubs.agents.ListAgents(rr.ListAgentsRequest())
        assert caught.value.code() == UNAUTHENTICATED
        assert error_reason(caught.value) == "UNAUTHENTICATED"
        assert caught.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await secured.stubs("anonymous").agents.ListAgents(rr.ListAgentsRequest())
    assert "authorization: Bearer" in (caught.value.details() or "")
    # A wrong scheme is refused too.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await secured.stubs("anonymous").agents.ListAgents(
            rr.ListAgentsRequest(),
            metadata=(("authorization", f"Basic {secured.secrets['admin']}"),),
        )
    assert caught.value.code() == UNAUTHENTICATED


async def test_customer_token_cannot_touch_another_customers_session(secured: Secured) -> None:
    customer = secured.stubs("customer")
    other = secured.other_session_id
    before = await snapshot(secured.database_url)
    attempts = [
        customer.sessions.GetSession(rr.GetSessionRequest(session_id=other)),
        customer.events.CreateEvent(customer_message(other, "not mine")),
        customer.sessions.ListSessions(
            rr.ListSessionsRequest(customer_id=secured.other_customer_id)
        ),
        customer.sessions.CreateSession(
            rr.CreateSessionRequest(
                session=pb.Session(agent_id=secured.agent_id, customer_id=secured.other_customer_id)
            )
        ),
        customer.sessions.UpdateSession(
            rr.UpdateSessionRequest(
                session_id=other,
                session=pb.Session(title="x"),
                update_mask=field_mask_pb2.FieldMask(paths=["title"]),
            )
        ),
        customer.sessions.DeleteSession(rr.DeleteSessionRequest(session_id=other)),
        # An unknown id answers like someone else's (no probing for ids).
        customer.sessions.GetSession(rr.GetSessionRequest(session_id="ses_unknown")),
    ]
    for call in attempts:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == DENIED, caught.value.details()
    for follow in (False, True):
        stream = customer.events.ListEvents(rr.ListEventsRequest(session_id=other, follow=follow))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await collect(stream)
        assert caught.value.code() == DENIED
    assert await snapshot(secured.database_url) == before

    # Their own: allowed, and listing shows only theirs.
    listed = await customer.sessions.ListSessions(rr.ListSessionsRequest())
    assert {s.id for s in listed.sessions} == {secured.session_id}
    created = await customer.sessions.CreateSession(
        rr.CreateSessionRequest(session=pb.Session(agent_id=secured.agent_id))
    )
    assert created.session.customer_id == secured.customer_id
    await customer.say(secured.session_id, "mine")
    events, _ = await collect(
        customer.events.ListEvents(rr.ListEventsRequest(session_id=secured.session_id))
    )
    assert events[-1].message.text == "mine"


@pytest.mark.parametrize(
    "source",
    [
        pb.EVENT_SOURCE_AI_AGENT,
        pb.EVENT_SOURCE_HUMAN_AGENT,
        pb.EVENT_SOURCE_HUMAN_AGENT_ON_BEHALF_OF_AI_AGENT,
        pb.EVENT_SOURCE_SYSTEM,
        pb.EVENT_SOURCE_CUSTOMER_UI,
    ],
)
async def test_customer_may_only_post_as_the_customer(secured: Secured, source: int) -> None:
    request = customer_message(secured.session_id, "impersonating")
    request.source = source
    request.message.participant.id = "someone"
    before = await snapshot(secured.database_url)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await secured.stubs("customer").events.CreateEvent(request)
    assert caught.value.code() == DENIED
    assert await snapshot(secured.database_url) == before


async def test_operator_posts_human_agent_messages_only(secured: Secured) -> None:
    operator = secured.stubs("operator")
    for source in (pb.EVENT_SOURCE_HUMAN_AGENT, pb.EVENT_SOURCE_HUMAN_AGENT_ON_BEHALF_OF_AI_AGENT):
        request = customer_message(secured.session_id, "a human here")
        request.source = source
        request.message.participant.id = "op-1"
        sent = await operator.events.CreateEvent(request)
        assert sent.event.actor.role == pb.ACTOR_ROLE_OPERATOR
        assert sent.event.actor.key_id == secured.key_ids["operator"]
    for source in (pb.EVENT_SOURCE_CUSTOMER, pb.EVENT_SOURCE_AI_AGENT, pb.EVENT_SOURCE_SYSTEM):
        request = customer_message(secured.session_id, "not a human-agent message")
        request.source = source
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await operator.events.CreateEvent(request)
        assert caught.value.code() == DENIED


async def test_expired_tampered_and_foreign_tokens_are_unauthenticated(secured: Secured) -> None:
    ours = CustomerTokens(TOKEN_SECRET)
    theirs = CustomerTokens("another-secret-" + "y" * 40)
    issuer = secured.key_ids["integration"]
    expired, _ = ours.issue(secured.customer_id, issuer, ttl_s=-5)
    foreign, _ = theirs.issue(secured.customer_id, issuer, ttl_s=600)
    good = secured.secrets["customer"]
    header, payload, signature = good.split(".")
    tampered_signature = (
        f"{header}.{payload}.{signature[:-4]}{'AAAA' if signature[-4:] != 'AAAA' else 'BBBB'}"
    )
    forged_payload = f"{header}.{payload[:-2]}xy.{signature}"
    unsigned = f"{header}.{payload}."
    for token in (expired, foreign, tampered_signature, forged_payload, unsigned):
        stubs = Stubs.on(secured.channels.with_credential(token))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stubs.sessions.GetSession(rr.GetSessionRequest(session_id=secured.session_id))
        assert caught.value.code() == UNAUTHENTICATED, token
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await Stubs.on(secured.channels.with_credential(expired)).sessions.GetSession(
            rr.GetSessionRequest(session_id=secured.session_id)
        )
    assert "expired" in (caught.value.details() or "")
    # The genuine one still works.
    await secured.stubs("customer").sessions.GetSession(
        rr.GetSessionRequest(session_id=secured.session_id)
    )


async def test_token_ttl_is_bounded(secured: Secured) -> None:
    auth = svc.AuthServiceStub(secured.channel("integration"))
    for seconds in (0, -1, 86_401):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await auth.IssueCustomerToken(
                rr.IssueCustomerTokenRequest(
                    customer_id=secured.customer_id, ttl=duration_pb2.Duration(seconds=seconds)
                )
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await auth.IssueCustomerToken(rr.IssueCustomerTokenRequest(customer_id="cus_nobody"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    issued = await auth.IssueCustomerToken(
        rr.IssueCustomerTokenRequest(
            customer_id=secured.customer_id, ttl=duration_pb2.Duration(seconds=60)
        )
    )
    lifetime = issued.expire_time.ToSeconds() - CustomerTokensClock.now_s()
    assert 50 <= lifetime <= 61


class CustomerTokensClock:
    @staticmethod
    def now_s() -> int:
        from baton_server.domain import now_us

        return now_us() // 1_000_000


async def test_revoked_key_and_its_tokens_are_refused(secured: Secured) -> None:
    assert secured.app.keys is not None
    integration = secured.stubs("integration")
    customer = secured.stubs("customer")
    await integration.agents.ListAgents(rr.ListAgentsRequest())
    assert await secured.app.keys.revoke(secured.key_ids["integration"])
    for call in (
        integration.agents.ListAgents(rr.ListAgentsRequest()),
        # The customer token was issued by that key: revoked with it.
        customer.sessions.GetSession(rr.GetSessionRequest(session_id=secured.session_id)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == UNAUTHENTICATED
    # Other keys are unaffected.
    await secured.stubs("operator").sessions.GetSession(
        rr.GetSessionRequest(session_id=secured.session_id)
    )


async def test_writes_record_who_did_them(secured: Secured) -> None:
    integration = secured.stubs("integration")
    session = (
        await integration.sessions.CreateSession(
            rr.CreateSessionRequest(
                session=pb.Session(agent_id=secured.agent_id, customer_id=secured.customer_id)
            )
        )
    ).session
    await secured.stubs("customer").say(session.id, "hello")
    await integration.sessions.UpdateSession(
        rr.UpdateSessionRequest(
            session_id=session.id,
            session=pb.Session(mode=pb.SESSION_MODE_MANUAL),
            update_mask=field_mask_pb2.FieldMask(paths=["mode"]),
        )
    )
    events, _ = await collect(
        integration.events.ListEvents(rr.ListEventsRequest(session_id=session.id))
    )
    created, message, mode_change, *handoff = events
    assert created.actor == pb.Actor(
        key_id=secured.key_ids["integration"], role=pb.ACTOR_ROLE_INTEGRATION
    )
    assert message.actor == pb.Actor(
        key_id=secured.key_ids["integration"],
        role=pb.ACTOR_ROLE_CUSTOMER,
        customer_id=secured.customer_id,
    )
    assert mode_change.actor.role == pb.ACTOR_ROLE_INTEGRATION
    assert dict(mode_change.custom["actor"]) == {
        "key_id": secured.key_ids["integration"],
        "role": "integration",
    }
    # The handoff the mode change opened, and an operator's claim of it, say who did them.
    assert handoff and all(e.actor.role == pb.ACTOR_ROLE_INTEGRATION for e in handoff)
    assert handoff[0].custom["type"] == "baton.handoff_requested"
    assert handoff[0].custom["actor"]["role"] == "integration"
    operator = secured.stubs("operator")
    (opened,) = (
        await operator.handoffs.ListHandoffs(rr.ListHandoffsRequest(session_id=session.id))
    ).handoffs
    await operator.handoffs.ClaimHandoff(
        rr.ClaimHandoffRequest(handoff_id=opened.id, operator=pb.Participant(id="op-1"))
    )
    events, _ = await collect(
        operator.events.ListEvents(
            rr.ListEventsRequest(session_id=session.id, min_offset=events[-1].offset + 1)
        )
    )
    claimed = next(e for e in events if e.HasField("custom"))
    assert claimed.custom["type"] == "baton.handoff_claimed"
    assert claimed.actor == pb.Actor(
        key_id=secured.key_ids["operator"], role=pb.ACTOR_ROLE_OPERATOR
    )
    assert claimed.custom["actor"]["key_id"] == secured.key_ids["operator"]


def test_keys_cli_creates_lists_and_revokes(tmp_path: Any) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}"
    runner = CliRunner()
    created = runner.invoke(
        cli_app, ["keys", "create", "--role", "operator", "--name", "desk", "--database", database]
    )
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("bk_key_")
    key_id = created.stdout.split()[3]
    listed = runner.invoke(cli_app, ["keys", "list", "--database", database])
    assert key_id in listed.stdout and "active" in listed.stdout and secret not in listed.stdout
    bad = runner.invoke(cli_app, ["keys", "create", "--role", "customer", "--database", database])
    assert bad.exit_code != 0
    revoked = runner.invoke(cli_app, ["keys", "revoke", key_id, "--database", database])
    assert revoked.exit_code == 0, revoked.output
    listed = runner.invoke(cli_app, ["keys", "list", "--database", database])
    assert "revoked" in listed.stdout
    again = runner.invoke(cli_app, ["keys", "revoke", key_id, "--database", database])
    assert again.exit_code == 1


async def test_a_key_bound_to_an_operator_acts_only_as_that_operator(secured: Secured) -> None:
    _, olga_secret = await secured.app.keys.create(Role.OPERATOR, "olga's console", "olga")
    olga = Stubs.on(secured.channels.with_credential(olga_secret))
    backend = secured.stubs("integration")
    handoff = (
        await backend.handoffs.RequestHandoff(
            rr.RequestHandoffRequest(session_id=secured.session_id, reason="help")
        )
    ).handoff
    denied = [
        olga.handoffs.ClaimHandoff(
            rr.ClaimHandoffRequest(handoff_id=handoff.id, operator=pb.Participant(id="bob"))
        ),
        olga.events.CreateEvent(
            rr.CreateEventRequest(
                session_id=secured.session_id,
                kind=pb.EVENT_KIND_MESSAGE,
                source=pb.EVENT_SOURCE_HUMAN_AGENT,
                message=pb.MessageData(text="hi", participant=pb.Participant(id="bob")),
            )
        ),
        olga.handoffs.ReleaseHandoff(
            rr.ReleaseHandoffRequest(
                handoff_id=handoff.id, operator_id="bob", outcome=pb.HANDOFF_OUTCOME_ABANDONED
            )
        ),
    ]
    for call in denied:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "acts for operator 'olga'" in (caught.value.details() or "")
    claimed = await olga.handoffs.ClaimHandoff(
        rr.ClaimHandoffRequest(handoff_id=handoff.id, operator=pb.Participant(id="olga"))
    )
    assert claimed.handoff.operator.id == "olga"
    # An unbound operator key still names whom it acts for.
    other = await secured.stubs("operator").handoffs.GetHandoff(
        rr.GetHandoffRequest(handoff_id=handoff.id)
    )
    assert other.handoff.state == pb.HANDOFF_STATE_CLAIMED
    with pytest.raises(ValueError):
        await secured.app.keys.create(Role.INTEGRATION, "x", "olga")
