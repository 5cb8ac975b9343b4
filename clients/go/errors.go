package baton

import (
	"errors"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Baton's errors are gRPC status errors with google.rpc details (AIP-193): an ErrorInfo on
// every error the server maps (reason such as "SESSION_NOT_FOUND", domain "baton.v1",
// metadata), a BadRequest with field violations on INVALID_ARGUMENT, a RetryInfo with a delay
// on RESOURCE_EXHAUSTED rate limits. These helpers read them from any error (wrapped ones
// too, with fmt.Errorf("...: %w", err)); they return zero values for nil and non-gRPC errors.

// Code is the gRPC status code of err (codes.OK for nil, codes.Unknown for a non-gRPC error).
func Code(err error) codes.Code { return status.Code(err) }

// Message is the status message of err, without the text of errors wrapping it ("" for nil,
// err.Error() for a non-gRPC error).
func Message(err error) string {
	if err == nil {
		return ""
	}
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		return se.GRPCStatus().Message()
	}
	return err.Error()
}

// ErrorInfo is the google.rpc.ErrorInfo of err, nil when it has none.
func ErrorInfo(err error) *errdetails.ErrorInfo {
	var info *errdetails.ErrorInfo
	eachDetail(err, func(d any) {
		if i, ok := d.(*errdetails.ErrorInfo); ok && info == nil {
			info = i
		}
	})
	return info
}

// Reason is the ErrorInfo reason of err, e.g. "UNAUTHENTICATED" or "SESSION_NOT_FOUND"
// ("" when it has none).
func Reason(err error) string { return ErrorInfo(err).GetReason() }

// Domain is the ErrorInfo domain of err ("baton.v1" for the server's errors).
func Domain(err error) string { return ErrorInfo(err).GetDomain() }

// Metadata is the ErrorInfo metadata of err (nil when none).
func Metadata(err error) map[string]string { return ErrorInfo(err).GetMetadata() }

// FieldViolations are the google.rpc.BadRequest field violations of err (INVALID_ARGUMENT):
// the request field (e.g. "event.message.text") and what is wrong with it.
func FieldViolations(err error) []*errdetails.BadRequest_FieldViolation {
	var out []*errdetails.BadRequest_FieldViolation
	eachDetail(err, func(d any) {
		if br, ok := d.(*errdetails.BadRequest); ok {
			out = append(out, br.GetFieldViolations()...)
		}
	})
	return out
}

// RetryDelay is the google.rpc.RetryInfo delay of err: how long to wait before trying again.
// ok is false when err carries no RetryInfo.
func RetryDelay(err error) (delay time.Duration, ok bool) {
	eachDetail(err, func(d any) {
		if ri, is := d.(*errdetails.RetryInfo); is && !ok && ri.GetRetryDelay() != nil {
			delay, ok = ri.GetRetryDelay().AsDuration(), true
		}
	})
	return delay, ok
}

func eachDetail(err error, f func(any)) {
	if err == nil {
		return
	}
	s, ok := status.FromError(err)
	if !ok {
		return
	}
	for _, d := range s.Details() {
		f(d)
	}
}

// Is reports whether err is a status error with code c.
func Is(err error, c codes.Code) bool { return err != nil && status.Code(err) == c }

// IsNotFound reports NOT_FOUND (unknown or deleted resource).
func IsNotFound(err error) bool { return Is(err, codes.NotFound) }

// IsAlreadyExists reports ALREADY_EXISTS (e.g. a handoff is already open; an idempotency key
// reused with another payload).
func IsAlreadyExists(err error) bool { return Is(err, codes.AlreadyExists) }

// IsInvalidArgument reports INVALID_ARGUMENT; FieldViolations says which fields.
func IsInvalidArgument(err error) bool { return Is(err, codes.InvalidArgument) }

// IsFailedPrecondition reports FAILED_PRECONDITION (e.g. another operator holds the handoff).
func IsFailedPrecondition(err error) bool { return Is(err, codes.FailedPrecondition) }

// IsAborted reports ABORTED (a stale expected_epoch: reason STALE_CONTROL_EPOCH).
func IsAborted(err error) bool { return Is(err, codes.Aborted) }

// IsUnauthenticated reports UNAUTHENTICATED (missing, unknown, revoked or expired credential).
func IsUnauthenticated(err error) bool { return Is(err, codes.Unauthenticated) }

// IsPermissionDenied reports PERMISSION_DENIED (the credential may not do this).
func IsPermissionDenied(err error) bool { return Is(err, codes.PermissionDenied) }

// IsResourceExhausted reports RESOURCE_EXHAUSTED (a limit; RetryDelay says when to retry).
func IsResourceExhausted(err error) bool { return Is(err, codes.ResourceExhausted) }

// IsUnavailable reports UNAVAILABLE (server restarting, unreachable or its database down;
// safe calls are retried by the client already).
func IsUnavailable(err error) bool { return Is(err, codes.Unavailable) }
