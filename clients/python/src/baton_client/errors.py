"""Typed errors: one exception class per gRPC status code, with Baton's rich details decoded.

Every call made through a `BatonClient` (helpers, `follow`, `watch_handoffs` and the raw
`client.stubs`, unary calls and the reading of server streams alike) raises a `BatonError`
subclass instead of a bare `grpc.aio.AioRpcError`:

    try:
        await client.sessions.get("ses_nope")
    except NotFound as error:
        print(error.code_name, error.reason, error.message)  # NOT_FOUND NOT_FOUND ...
    except InvalidArgument as error:
        print(error.field_violations)                     # {"session_id": "must not be empty"}
    except ResourceExhausted as error:
        print(error.retry_delay)                          # seconds, from RetryInfo

`BatonError` subclasses `grpc.aio.AioRpcError`, so code written against the raw error
(`except grpc.aio.AioRpcError`, `error.code()`, `error.details()`) keeps working.
`error_info`, `error_reason`, `field_violations` and `retry_delay` also read a raw
`AioRpcError` (e.g. from a channel of your own).
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

__all__ = [
    "Aborted",
    "AlreadyExists",
    "BatonError",
    "Cancelled",
    "DataLoss",
    "DeadlineExceeded",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "UnknownError",
    "as_baton_error",
    "error_info",
    "error_reason",
    "field_violations",
    "retry_delay",
]


def _details(error: grpc.aio.AioRpcError) -> list[any_pb2.Any]:
    try:
        # The stub types from_call's argument as a grpc.Call (code(), details() and
        # trailing_metadata() on a sync call), which AioRpcError provides though it is no Call.
        status: status_pb2.Status | None = rpc_status.from_call(error)  # type: ignore[arg-type]
    except ValueError:  # details that do not match the call's code/message
        return []
    return list(status.details) if status is not None else []


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo | None:
    """The ErrorInfo detail of an error, if it carries one."""
    for detail in _details(error):
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):  # False when the detail is of another type
            return info
    return None


def error_reason(error: grpc.aio.AioRpcError) -> str | None:
    """The ErrorInfo reason (e.g. "NOT_FOUND", "SERVER_SHUTTING_DOWN"), if any."""
    info = error_info(error)
    return info.reason if info is not None else None


def field_violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    """Field -> description from the BadRequest detail of an INVALID_ARGUMENT error."""
    violations: dict[str, str] = {}
    for detail in _details(error):
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):  # False when the detail is of another type
            violations.update((v.field, v.description) for v in bad.field_violations)
    return violations


def retry_delay(error: grpc.aio.AioRpcError) -> float | None:
    """Seconds the server asks to wait before retrying (RetryInfo), if it says."""
    for detail in _details(error):
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            return info.retry_delay.ToNanoseconds() / 1e9
    return None


class BatonError(grpc.aio.AioRpcError):
    """A failed Baton call. Subclasses per status code (`NotFound`, `Unauthenticated`, ...).

    - `code()`: the `grpc.StatusCode` (as on `AioRpcError`); `code_name`: its name.
    - `message`: the server's message (also `details()`).
    - `reason`, `domain`, `metadata`: from the `google.rpc.ErrorInfo` detail ("" / {} when absent).
    - `field_violations`: field -> description, from `google.rpc.BadRequest`.
    - `retry_delay`: seconds from `google.rpc.RetryInfo`, or None.
    """

    #: The status code this class stands for (BatonError itself: any code without a class).
    status_code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        code: grpc.StatusCode,
        initial_metadata: grpc.aio.Metadata | None = None,
        trailing_metadata: grpc.aio.Metadata | None = None,
        details: str | None = None,
        debug_error_string: str | None = None,
    ) -> None:
        super().__init__(code, initial_metadata, trailing_metadata, details, debug_error_string)
        info = error_info(self)
        self.reason: str = info.reason if info is not None else ""
        self.domain: str = info.domain if info is not None else ""
        self.metadata: dict[str, str] = dict(info.metadata) if info is not None else {}
        self.field_violations: dict[str, str] = field_violations(self)
        self.retry_delay: float | None = retry_delay(self)

    @property
    def code_name(self) -> str:
        """The code's name, e.g. "UNAUTHENTICATED"."""
        return self.code().name

    @property
    def message(self) -> str:
        return self.details() or ""

    def __str__(self) -> str:
        reason = f" ({self.reason})" if self.reason else ""
        return f"{self.code().name}{reason}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self!s})"


class Cancelled(BatonError):
    status_code = grpc.StatusCode.CANCELLED


class UnknownError(BatonError):
    status_code = grpc.StatusCode.UNKNOWN


class InvalidArgument(BatonError):
    status_code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(BatonError):
    status_code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFound(BatonError):
    status_code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(BatonError):
    status_code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(BatonError):
    status_code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(BatonError):
    status_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(BatonError):
    status_code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(BatonError):
    status_code = grpc.StatusCode.ABORTED


class OutOfRange(BatonError):
    status_code = grpc.StatusCode.OUT_OF_RANGE


class Unimplemented(BatonError):
    status_code = grpc.StatusCode.UNIMPLEMENTED


class Internal(BatonError):
    status_code = grpc.StatusCode.INTERNAL


class Unavailable(BatonError):
    status_code = grpc.StatusCode.UNAVAILABLE


class DataLoss(BatonError):
    status_code = grpc.StatusCode.DATA_LOSS


class Unauthenticated(BatonError):
    status_code = grpc.StatusCode.UNAUTHENTICATED


_BY_CODE: dict[grpc.StatusCode, type[BatonError]] = {
    cls.status_code: cls
    for cls in (
        Cancelled,
        UnknownError,
        InvalidArgument,
        DeadlineExceeded,
        NotFound,
        AlreadyExists,
        PermissionDenied,
        ResourceExhausted,
        FailedPrecondition,
        Aborted,
        OutOfRange,
        Unimplemented,
        Internal,
        Unavailable,
        DataLoss,
        Unauthenticated,
    )
}


def as_baton_error(error: grpc.aio.AioRpcError) -> BatonError:
    """The typed error for a raw `AioRpcError` (returned as is when it already is one)."""
    if isinstance(error, BatonError):
        return error
    cls = _BY_CODE.get(error.code(), BatonError)
    return cls(
        error.code(),
        error.initial_metadata(),
        error.trailing_metadata(),
        error.details(),
        error.debug_error_string(),
    )
