package baton

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestErrorHelpers(t *testing.T) {
	st, err := status.New(codes.InvalidArgument, "bad request").WithDetails(
		&errdetails.ErrorInfo{Reason: "INVALID_ARGUMENT", Domain: "baton.v1", Metadata: map[string]string{"field": "text"}},
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: "event.message.text", Description: "must not be blank"},
			{Field: "session_id", Description: "required"}}},
		&errdetails.RetryInfo{RetryDelay: durationpb.New(1500 * time.Millisecond)},
	)
	if err != nil {
		t.Fatal(err)
	}
	wrapped := fmt.Errorf("creating the event: %w", st.Err())
	for _, e := range []error{st.Err(), wrapped} {
		if Code(e) != codes.InvalidArgument || !IsInvalidArgument(e) || IsNotFound(e) {
			t.Errorf("code of %v: %v", e, Code(e))
		}
		if Reason(e) != "INVALID_ARGUMENT" || Domain(e) != "baton.v1" || Metadata(e)["field"] != "text" {
			t.Errorf("ErrorInfo of %v: %v", e, ErrorInfo(e))
		}
		v := FieldViolations(e)
		if len(v) != 2 || v[0].GetField() != "event.message.text" || v[1].GetDescription() != "required" {
			t.Errorf("field violations of %v: %v", e, v)
		}
		if d, ok := RetryDelay(e); !ok || d != 1500*time.Millisecond {
			t.Errorf("retry delay of %v: %s %v", e, d, ok)
		}
		if Message(e) != "bad request" {
			t.Errorf("message of %v: %q", e, Message(e))
		}
	}
}

func TestErrorHelpersWithoutDetails(t *testing.T) {
	for _, e := range []error{nil, errors.New("plain"), status.Error(codes.NotFound, "no such session")} {
		if Reason(e) != "" || ErrorInfo(e) != nil || FieldViolations(e) != nil || Metadata(e) != nil {
			t.Errorf("%v: details found", e)
		}
		if _, ok := RetryDelay(e); ok {
			t.Errorf("%v: retry delay found", e)
		}
	}
	if Code(nil) != codes.OK || IsNotFound(nil) || Code(errors.New("x")) != codes.Unknown {
		t.Error("codes of nil / plain errors")
	}
	if !IsNotFound(status.Error(codes.NotFound, "x")) || !IsUnauthenticated(status.Error(codes.Unauthenticated, "x")) ||
		!IsPermissionDenied(status.Error(codes.PermissionDenied, "x")) || !IsAborted(status.Error(codes.Aborted, "x")) ||
		!IsFailedPrecondition(status.Error(codes.FailedPrecondition, "x")) || !IsAlreadyExists(status.Error(codes.AlreadyExists, "x")) {
		t.Error("Is* helpers")
	}
}
