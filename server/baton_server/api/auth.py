"""AuthService servicer: mints customer tokens (who may call it is decided by the policy)."""

from __future__ import annotations

from baton_server.api.grpc_types import Context
from baton_server.api.mapping import require_id, timestamp
from baton_server.api.protos import rr, svc_grpc
from baton_server.auth.principal import current_principal
from baton_server.service.tokens import TokenIssuer


class AuthServicer(svc_grpc.AuthServiceServicer):
    def __init__(self, issuer: TokenIssuer) -> None:
        self._issuer = issuer

    async def IssueCustomerToken(
        self, request: rr.IssueCustomerTokenRequest, context: Context
    ) -> rr.IssueCustomerTokenResponse:
        ttl_s = request.ttl.ToSeconds() if request.HasField("ttl") else None
        issued = await self._issuer.issue(
            current_principal(), require_id(request.customer_id, "customer_id"), ttl_s
        )
        return rr.IssueCustomerTokenResponse(
            token=issued.token, expire_time=timestamp(issued.expires_at_s * 1_000_000)
        )
