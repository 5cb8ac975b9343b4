"""AuthService servicer: mints customer tokens (who may call it is decided by the policy)."""

from __future__ import annotations

from typing import Any

import grpc

from baton_server.api.mapping import require_id, timestamp
from baton_server.api.protos import rr, svc_grpc
from baton_server.auth.principal import current_principal
from baton_server.auth.tokens import CustomerTokens
from baton_server.errors import InvalidArgument
from baton_server.store import Repository


class AuthServicer(svc_grpc.AuthServiceServicer):
    def __init__(
        self, repository: Repository, tokens: CustomerTokens, default_ttl_s: int, max_ttl_s: int
    ) -> None:
        self._repo = repository
        self._tokens = tokens
        self._default_ttl_s = default_ttl_s
        self._max_ttl_s = max_ttl_s

    async def IssueCustomerToken(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        customer_id = require_id(request.customer_id, "customer_id")
        ttl_s = self._default_ttl_s
        if request.HasField("ttl"):
            ttl_s = request.ttl.ToSeconds()
            if ttl_s < 1 or ttl_s > self._max_ttl_s:
                raise InvalidArgument.single(
                    "ttl", f"must be between 1 s and {self._max_ttl_s} s (got {ttl_s} s)"
                )
        await self._repo.get_customer(customer_id)  # NOT_FOUND for unknown customers
        principal = current_principal()
        # Revoking the issuing key revokes its tokens; a --dev server issues unattributed ones.
        issuer = principal.key_id if principal is not None else ""
        token, expires_s = self._tokens.issue(customer_id, issuer, ttl_s)
        expire_time = timestamp(expires_s * 1_000_000)
        return rr.IssueCustomerTokenResponse(token=token, expire_time=expire_time)
