"""Domain errors. The API layer maps each to one gRPC status code in one place."""

from __future__ import annotations

from dataclasses import dataclass

from baton_server.domain import GuardFailure


class BatonError(Exception):
    """Base of every error a client can cause. `reason` is an UPPER_SNAKE ErrorInfo reason."""

    reason = "BATON_ERROR"

    def __init__(self, message: str, *, metadata: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.metadata = metadata or {}


@dataclass(frozen=True, slots=True)
class FieldViolation:
    field: str
    description: str


class InvalidArgument(BatonError):
    reason = "INVALID_ARGUMENT"

    def __init__(self, violations: list[FieldViolation]) -> None:
        text = "; ".join(f"{v.field}: {v.description}" for v in violations)
        super().__init__(f"invalid request: {text}")
        self.violations = violations

    @classmethod
    def single(cls, field: str, description: str) -> InvalidArgument:
        return cls([FieldViolation(field, description)])


class NotFound(BatonError):
    reason = "NOT_FOUND"

    def __init__(self, resource: str, resource_id: str) -> None:
        super().__init__(
            f"{resource} {resource_id!r} does not exist",
            metadata={"resource": resource, "id": resource_id},
        )
        self.resource = resource
        self.resource_id = resource_id


class AlreadyExists(BatonError):
    reason = "ALREADY_EXISTS"


class IdempotencyKeyReused(AlreadyExists):
    reason = "IDEMPOTENCY_KEY_REUSED"


class FailedPrecondition(BatonError):
    reason = "FAILED_PRECONDITION"


class ShuttingDown(BatonError):
    """The server is stopping; the client should reconnect (elsewhere) and resume."""

    reason = "SERVER_SHUTTING_DOWN"


class DatabaseUnavailable(BatonError):
    """The database cannot be reached now; health says NOT_SERVING until it can. Retry (with an
    idempotency key, appends are safe to repeat)."""

    reason = "DATABASE_UNAVAILABLE"


class NeedsHandoffControl(BatonError):
    """A human agent's message cannot ride the group commit (nobody holds the session, or
    someone else does): the handoff controls take it through their own transaction instead.
    Never reaches a client."""

    reason = "NEEDS_HANDOFF_CONTROL"


class TurnAborted(BatonError):
    """An agent turn may no longer write: superseded by a newer customer message, or the session
    left AUTO mode (a human took over). Its output is discarded, never posted. `failed` says
    which guard condition failed; the engine decides what that means for the customer."""

    reason = "TURN_ABORTED"

    def __init__(self, failed: GuardFailure) -> None:
        super().__init__(f"turn guard failed: {failed.value}", metadata={"failed": failed.value})
        self.failed = failed


class StaleEpoch(BatonError):
    """A control RPC acted on an old picture of who controls the session."""

    reason = "STALE_CONTROL_EPOCH"

    def __init__(self, session_id: str, expected: int, actual: int) -> None:
        super().__init__(
            f"session {session_id!r} is at control epoch {actual}, not {expected}: someone "
            "changed who controls it; re-read the session or handoff and decide again",
            metadata={
                "session_id": session_id,
                "expected_epoch": str(expected),
                "control_epoch": str(actual),
            },
        )


class Unauthenticated(BatonError):
    """No credentials, or credentials Baton does not accept (unknown, revoked, expired)."""

    reason = "UNAUTHENTICATED"


class PermissionDenied(BatonError):
    """Valid credentials whose role may not do this (or not to this resource)."""

    reason = "PERMISSION_DENIED"


class ResourceExhausted(BatonError):
    """A per-caller limit was hit; `retry_after_s` (when known) tells when to try again."""

    reason = "RESOURCE_EXHAUSTED"

    def __init__(
        self,
        message: str,
        *,
        reason: str = "RESOURCE_EXHAUSTED",
        retry_after_s: float | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, metadata=metadata)
        self.reason = reason
        self.retry_after_s = retry_after_s
