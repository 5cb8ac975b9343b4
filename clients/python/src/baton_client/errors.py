"""Reading Baton's rich error details (google.rpc.Status) from a failed call.

Calls raise `grpc.aio.AioRpcError` unchanged; these helpers pull out what Baton attaches to it:
an `ErrorInfo` (reason such as "NOT_FOUND", "IDEMPOTENCY_KEY_REUSED", "SERVER_SHUTTING_DOWN",
plus metadata) and, for INVALID_ARGUMENT, a `BadRequest` with the offending fields.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

__all__ = ["error_info", "error_reason", "field_violations"]


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
