package baton

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	batonv1 "github.com/baton-dev/baton/clients/go/gen/baton/v1"
)

// SafeMethods are the unary methods Dial's retry policy repeats on UNAVAILABLE: reads, and
// IssueCustomerToken (a second token is harmless). CreateEvent is added when the client fills
// idempotency keys (the default): the server answers a repeated key with the original event.
// Creates, updates, deletes and the handoff controls are not retried: a repeat could act twice
// or fail where the first attempt succeeded.
var SafeMethods = []string{
	"baton.v1.AgentService/GetAgent",
	"baton.v1.AgentService/ListAgents",
	"baton.v1.CustomerService/GetCustomer",
	"baton.v1.CustomerService/ListCustomers",
	"baton.v1.SessionService/GetSession",
	"baton.v1.SessionService/ListSessions",
	"baton.v1.GuidelineService/GetGuideline",
	"baton.v1.GuidelineService/ListGuidelines",
	"baton.v1.CannedResponseService/GetCannedResponse",
	"baton.v1.CannedResponseService/ListCannedResponses",
	"baton.v1.ToolService/ListTools",
	"baton.v1.HandoffService/GetHandoff",
	"baton.v1.HandoffService/ListHandoffs",
	"baton.v1.HandoffService/GetHandoffStats",
	"baton.v1.AuthService/IssueCustomerToken",
}

const createEventMethod = "/baton.v1.EventService/CreateEvent"

// RetryServiceConfig is the gRPC service config Dial sets as default: a retry policy for the
// SafeMethods (plus CreateEvent when withCreateEvent): up to 5 attempts on UNAVAILABLE, with
// gRPC's jittered exponential backoff from 0.3 s doubling up to 5 s. A call's deadline bounds
// its retries; streams (ListEvents, WatchHandoffs) are resumed by Follow and WatchHandoffs.
func RetryServiceConfig(withCreateEvent bool) string {
	type name struct {
		Service string `json:"service"`
		Method  string `json:"method"`
	}
	var names []name
	methods := SafeMethods
	if withCreateEvent {
		methods = append(methods[:len(methods):len(methods)], createEventMethod[1:])
	}
	for _, m := range methods {
		for i := range m {
			if m[i] == '/' {
				names = append(names, name{Service: m[:i], Method: m[i+1:]})
				break
			}
		}
	}
	cfg := map[string]any{
		"methodConfig": []any{map[string]any{
			"name": names,
			"retryPolicy": map[string]any{
				"maxAttempts":          5,
				"initialBackoff":       "0.3s",
				"maxBackoff":           "5s",
				"backoffMultiplier":    2.0,
				"retryableStatusCodes": []string{"UNAVAILABLE"},
			},
		}},
	}
	out, err := json.Marshal(cfg)
	if err != nil {
		panic(err) // static data
	}
	return string(out)
}

// NewIdempotencyKey returns a random (version 4) UUID from crypto/rand.
func NewIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics rather than returning an error)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// IdempotencyKeyInterceptor gives a CreateEvent call whose request has an empty
// idempotency_key a fresh NewIdempotencyKey(): it sends a copy of the request (proto.Clone)
// with the key set, so the key stays the same across every attempt of that call (the retry
// policy's, and RetryInfoInterceptor's when it is installed after this one, as Dial does) and
// the event is appended at most once. The caller's request is not modified: sending the same
// request value again is a new call with a new key, i.e. a new event. To make repeats of your
// own (e.g. after a timeout) idempotent, set the key yourself. Dial installs it.
func IdempotencyKeyInterceptor(ctx context.Context, method string, req, reply any,
	cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if r, ok := req.(*batonv1.CreateEventRequest); ok && method == createEventMethod && r.GetIdempotencyKey() == "" {
		c := proto.CloneOf(r)
		c.IdempotencyKey = NewIdempotencyKey()
		req = c
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// RetryInfoInterceptor repeats a unary call whose error carries a google.rpc.RetryInfo delay
// (see RetryDelay), after that delay (+ up to 10 % jitter), up to attempts in all. A delay
// longer than maxDelay, or than what is left of the call's deadline, is returned to the caller
// at once. Baton sends RetryInfo only on refusals made before the request was acted on (rate
// limits), so any method may be repeated. Dial installs it (WithRetryInfo, WithoutRetries).
func RetryInfoInterceptor(attempts int, maxDelay time.Duration) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
		invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		for attempt := 1; ; attempt++ {
			err := invoker(ctx, method, req, reply, cc, opts...)
			if err == nil || attempt >= attempts {
				return err
			}
			delay, ok := RetryDelay(err)
			if !ok || delay > maxDelay {
				return err
			}
			delay += mrand.N(delay/10 + 1)
			if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < delay {
				return err
			}
			timer := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				timer.Stop()
				return err
			case <-timer.C:
			}
		}
	}
}
