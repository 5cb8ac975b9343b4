package baton

// The worker loop against a scripted ToolWorkerService on a real loopback listener: each test
// plays the server's side of the protocol (accept, calls, cancel, heartbeats, refusals, stream
// ends) and checks what the worker sends back. The real server: worker_live_test.go.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	batonv1 "github.com/baton-dev/baton/clients/go/gen/baton/v1"
)

type workerStreamServer = grpc.BidiStreamingServer[batonv1.ServeToolsRequest, batonv1.ServeToolsResponse]

// fakeWorkers runs script(n, stream) for the n-th ServeTools stream (0-based; the last script
// repeats).
type fakeWorkers struct {
	batonv1.UnimplementedToolWorkerServiceServer
	scripts []func(t *testing.T, stream workerStreamServer) error
	t       *testing.T
	streams atomic.Int32
}

func (f *fakeWorkers) ServeTools(stream workerStreamServer) error {
	n := int(f.streams.Add(1)) - 1
	return f.scripts[min(n, len(f.scripts)-1)](f.t, stream)
}

func serveWorkers(t *testing.T, scripts ...func(t *testing.T, stream workerStreamServer) error) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	batonv1.RegisterToolWorkerServiceServer(srv, &fakeWorkers{scripts: scripts, t: t})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// accept reads the declaration and accepts it.
func accept(t *testing.T, stream workerStreamServer, id string, heartbeat time.Duration) *batonv1.WorkerDeclaration {
	msg, err := stream.Recv()
	if err != nil {
		t.Errorf("declaration: %v", err)
		return nil
	}
	decl := msg.GetDeclare()
	if decl == nil {
		t.Errorf("first message %v, want declare", msg)
	}
	_ = stream.Send(&batonv1.ServeToolsResponse{Kind: &batonv1.ServeToolsResponse_Accepted{Accepted: &batonv1.WorkerAccepted{
		WorkerId: id, HeartbeatInterval: durationpb.New(heartbeat)}}})
	return decl
}

func sendCall(stream workerStreamServer, id, tool string, args map[string]any, deadline time.Duration) {
	a, _ := structpb.NewStruct(args)
	_ = stream.Send(&batonv1.ServeToolsResponse{Kind: &batonv1.ServeToolsResponse_Call{Call: &batonv1.ToolCallRequest{
		CallId: id, Tool: tool, Arguments: a, SessionId: "ses_1", AgentId: "agt_1", CustomerId: "cus_1",
		CorrelationId: "cor_1", Attempt: 1, Deadline: timestamppb.New(time.Now().Add(deadline))}}})
}

// next returns the next message that is not a heartbeat.
func next(stream workerStreamServer) (*batonv1.ServeToolsRequest, error) {
	for {
		msg, err := stream.Recv()
		if err != nil || msg.GetHeartbeat() == nil {
			return msg, err
		}
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newWorker(t *testing.T, opts WorkerOptions, tools ...*Tool) *ToolWorker {
	t.Helper()
	opts.Logger = quietLogger()
	opts.Dial = append(opts.Dial, WithAPIKey("bk_key_worker"))
	if opts.InitialBackoff == 0 {
		opts.InitialBackoff, opts.MaxBackoff = time.Millisecond, 10*time.Millisecond
	}
	w, err := NewToolWorker(opts, tools...)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// runWorker runs w in the background; the returned function waits for Run's result.
func runWorker(t *testing.T, w *ToolWorker) func() error {
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	t.Cleanup(w.Stop)
	return func() error {
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return within 10 s")
			return nil
		}
	}
}

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: not within 10 s", what)
	}
}

type orderArgs struct {
	OrderID string `json:"order_id"`
}

var orderTool = MustTool("check_order_status", "Looks up an order",
	func(_ context.Context, call ToolCall, a orderArgs) (ToolResult, error) {
		if a.OrderID == "" {
			return ToolResult{}, errors.New("no order number")
		}
		return ToolResult{Data: map[string]any{"order": a.OrderID, "session": call.SessionID, "attempt": call.Attempt}}, nil
	})

func TestWorkerDeclaresServesAndDrains(t *testing.T) {
	results := make(chan *batonv1.ServeToolsRequest, 10)
	var decl *batonv1.WorkerDeclaration
	var auth []string
	target := serveWorkers(t, func(t *testing.T, stream workerStreamServer) error {
		md, _ := metadata.FromIncomingContext(stream.Context())
		auth = md.Get("authorization")
		decl = accept(t, stream, "w-1", time.Minute)
		sendCall(stream, "c1", "check_order_status", map[string]any{"order_id": "12345"}, time.Minute)
		sendCall(stream, "c2", "check_order_status", map[string]any{}, time.Minute)
		sendCall(stream, "c3", "refund", map[string]any{}, time.Minute)
		for {
			msg, err := next(stream)
			if err == io.EOF {
				return nil // half-closed after the drain: end the stream
			}
			if err != nil {
				return err
			}
			results <- msg
		}
	})
	w := newWorker(t, WorkerOptions{Targets: []string{target}, Name: "orders", MaxConcurrentCalls: 4}, orderTool)
	wait := runWorker(t, w)
	waitClosed(t, w.Accepted(), "accepted")
	if ids := w.WorkerIDs(); ids[target] != "w-1" {
		t.Errorf("worker ids %v", ids)
	}
	got := map[string]*batonv1.ToolCallResult{}
	for len(got) < 3 {
		select {
		case m := <-results:
			got[m.GetResult().GetCallId()] = m.GetResult()
		case <-time.After(10 * time.Second):
			t.Fatalf("results so far %v", got)
		}
	}
	if d := got["c1"].GetData().GetStructValue().AsMap(); d["order"] != "12345" || d["session"] != "ses_1" || d["attempt"] != 1.0 {
		t.Errorf("c1 data %v", d)
	}
	if e := got["c2"].GetError(); e != "no order number" {
		t.Errorf("c2 error %q", e)
	}
	if e := got["c3"].GetError(); !strings.Contains(e, `does not serve tool "refund"`) {
		t.Errorf("c3 error %q", e)
	}
	w.Stop()
	select {
	case m := <-results:
		if m.GetDrain() == nil {
			t.Errorf("after Stop: %v, want drain", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no drain after Stop")
	}
	if err := wait(); err != nil {
		t.Errorf("Run after a drain: %v", err)
	}
	if len(auth) != 1 || auth[0] != "Bearer bk_key_worker" {
		t.Errorf("authorization %v", auth)
	}
	if decl.GetWorkerName() != "orders" || decl.GetMaxConcurrentCalls() != 4 || len(decl.GetTools()) != 1 {
		t.Fatalf("declaration %v", decl)
	}
	p := decl.GetTools()[0].GetParameters().AsMap()
	if decl.GetTools()[0].GetName() != "check_order_status" || p["type"] != "object" ||
		p["properties"].(map[string]any)["order_id"].(map[string]any)["type"] != "string" {
		t.Errorf("declared tool %v", decl.GetTools()[0])
	}
}

// blocking is a tool whose handler reports when it starts and waits for its ctx or release.
func blocking(started chan<- string, release <-chan struct{}, causes chan<- error) *Tool {
	return MustTool("slow", "", func(ctx context.Context, call ToolCall, _ struct{}) (ToolResult, error) {
		started <- call.ID
		select {
		case <-ctx.Done():
			causes <- context.Cause(ctx)
			return ToolResult{Data: "late"}, ctx.Err()
		case <-release:
			return ToolResult{Data: "done " + call.ID}, nil
		}
	})
}

func TestWorkerCancelStopsTheHandlerAndSendsNothing(t *testing.T) {
	started, causes := make(chan string, 2), make(chan error, 2)
	release := make(chan struct{})
	firstResult := make(chan *batonv1.ToolCallResult, 1)
	target := serveWorkers(t, func(t *testing.T, stream workerStreamServer) error {
		accept(t, stream, "w-1", time.Minute)
		sendCall(stream, "c1", "slow", nil, time.Minute)
		if id := <-started; id != "c1" {
			t.Errorf("started %s", id)
		}
		_ = stream.Send(&batonv1.ServeToolsResponse{Kind: &batonv1.ServeToolsResponse_Cancel{
			Cancel: &batonv1.ToolCallCancel{CallId: "c1", Reason: "deadline passed"}}})
		if err := <-causes; !errors.Is(err, ErrCallCancelled) || !strings.Contains(err.Error(), "deadline passed") {
			t.Errorf("cause seen by the handler: %v", err)
		}
		// c1 must send nothing: the first result to arrive is c2's.
		sendCall(stream, "c2", "slow", nil, time.Minute)
		<-started
		close(release)
		msg, err := next(stream)
		if err != nil {
			return err
		}
		firstResult <- msg.GetResult()
		<-stream.Context().Done()
		return nil
	})
	w := newWorker(t, WorkerOptions{Targets: []string{target}, MaxConcurrentCalls: 2},
		blocking(started, release, causes))
	runWorker(t, w)
	select {
	case r := <-firstResult:
		if r.GetCallId() != "c2" || r.GetData().GetStringValue() != "done c2" {
			t.Errorf("first result %v, want c2's", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no result")
	}
}

func TestWorkerHandlerDeadlineAndPanic(t *testing.T) {
	results := make(chan *batonv1.ToolCallResult, 2)
	target := serveWorkers(t, func(t *testing.T, stream workerStreamServer) error {
		accept(t, stream, "w-1", time.Minute)
		sendCall(stream, "c1", "wait_for_deadline", nil, 50*time.Millisecond)
		sendCall(stream, "c2", "boom", nil, time.Minute)
		for range 2 {
			msg, err := next(stream)
			if err != nil {
				return err
			}
			results <- msg.GetResult()
		}
		<-stream.Context().Done()
		return nil
	})
	waiter := MustTool("wait_for_deadline", "", func(ctx context.Context, call ToolCall, _ struct{}) (ToolResult, error) {
		if time.Until(call.Deadline) > time.Second {
			return ToolResult{}, errors.New("deadline not passed on")
		}
		<-ctx.Done() // the call's deadline is the ctx's
		return ToolResult{}, ctx.Err()
	})
	boom := MustTool("boom", "", func(context.Context, ToolCall, struct{}) (ToolResult, error) { panic("nil map") })
	w := newWorker(t, WorkerOptions{Targets: []string{target}, MaxConcurrentCalls: 2}, waiter, boom)
	runWorker(t, w)
	got := map[string]string{}
	for range 2 {
		select {
		case r := <-results:
			got[r.GetCallId()] = r.GetError()
		case <-time.After(10 * time.Second):
			t.Fatalf("results %v", got)
		}
	}
	if got["c1"] != context.DeadlineExceeded.Error() || !strings.Contains(got["c2"], "panicked: nil map") {
		t.Errorf("errors %v", got)
	}
}

func TestWorkerDrainWaitsForCallsInFlight(t *testing.T) {
	started, causes := make(chan string, 1), make(chan error, 1)
	release := make(chan struct{})
	var order []string
	target := serveWorkers(t, func(t *testing.T, stream workerStreamServer) error {
		accept(t, stream, "w-1", time.Minute)
		sendCall(stream, "c1", "slow", nil, time.Minute)
		for {
			msg, err := next(stream)
			if err == io.EOF {
				order = append(order, "half-close")
				return nil
			}
			if err != nil {
				return err
			}
			switch {
			case msg.GetDrain() != nil:
				order = append(order, "drain")
				close(release) // the call finishes only after the drain notice
			case msg.GetResult() != nil:
				order = append(order, "result "+msg.GetResult().GetData().GetStringValue())
			}
		}
	})
	w := newWorker(t, WorkerOptions{Targets: []string{target}}, blocking(started, release, causes))
	wait := runWorker(t, w)
	<-started
	w.Stop()
	if err := wait(); err != nil {
		t.Errorf("Run: %v", err)
	}
	if strings.Join(order, ", ") != "drain, result done c1, half-close" {
		t.Errorf("the server saw %v", order)
	}
}

func TestWorkerDrainGraceCancelsStragglers(t *testing.T) {
	started, causes := make(chan string, 1), make(chan error, 1)
	var sawResult atomic.Bool
	target := serveWorkers(t, func(t *testing.T, stream workerStreamServer) error {
		accept(t, stream, "w-1", time.Minute)
		sendCall(stream, "c1", "slow", nil, time.Minute)
		for {
			msg, err := next(stream)
			if err != nil {
				return nil
			}
			if msg.GetResult() != nil {
				sawResult.Store(true)
			}
		}
	})
	w := newWorker(t, WorkerOptions{Targets: []string{target}, DrainGrace: 100 * time.Millisecond},
		blocking(started, make(chan struct{}), causes))
	wait := runWorker(t, w)
	<-started
	w.Stop()
	if err := wait(); !errors.Is(err, ErrDrainTimeout) {
		t.Errorf("Run: %v, want ErrDrainTimeout", err)
	}
	if err := <-causes; !errors.Is(err, ErrDrainTimeout) {
		t.Errorf("handler's cause %v", err)
	}
	if sawResult.Load() {
		t.Error("a call cancelled by the grace period sent a result")
	}
}

func TestWorkerReconnectsAndDeclaresAgain(t *testing.T) {
	var reconnects []WorkerReconnect
	var mu sync.Mutex
	declared := make(chan string, 4)
	target := serveWorkers(t,
		func(t *testing.T, stream workerStreamServer) error {
			accept(t, stream, "w-1", time.Minute)
			declared <- "first"
			return status.Error(codes.Unavailable, "server shutting down")
		},
		func(t *testing.T, stream workerStreamServer) error {
			return status.Error(codes.Unavailable, "still starting") // before accepting
		},
		func(t *testing.T, stream workerStreamServer) error {
			accept(t, stream, "w-2", 50*time.Millisecond)
			declared <- "third"
			// Silent: no heartbeat for 3 intervals ends the stream on the worker's side.
			<-stream.Context().Done()
			declared <- "dropped"
			return nil
		},
		func(t *testing.T, stream workerStreamServer) error {
			accept(t, stream, "w-3", time.Minute)
			declared <- "fourth"
			<-stream.Context().Done()
			return nil
		},
	)
	w := newWorker(t, WorkerOptions{Targets: []string{target}, OnReconnect: func(r WorkerReconnect) {
		mu.Lock()
		reconnects = append(reconnects, r)
		mu.Unlock()
	}}, orderTool)
	runWorker(t, w)
	for _, want := range []string{"first", "third", "dropped", "fourth"} {
		select {
		case got := <-declared:
			if got != want {
				t.Fatalf("got %s, want %s", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s stream", want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reconnects) != 3 || reconnects[0].Attempt != 1 || reconnects[1].Attempt != 2 || reconnects[2].Attempt != 1 ||
		!IsUnavailable(reconnects[0].Err) || !strings.Contains(Message(reconnects[2].Err), "no message from the server") {
		t.Errorf("reconnects %+v", reconnects)
	}
	// The worker records the new id once it has read the accept the server just sent.
	for deadline := time.Now().Add(10 * time.Second); w.WorkerIDs()[target] != "w-3"; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("worker ids %v, want w-3 after the last accept", w.WorkerIDs())
		}
	}
}

func TestWorkerSurfacesRefusals(t *testing.T) {
	bad, _ := status.New(codes.InvalidArgument, "bad declaration").WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "declare.tools[0].name", Description: "taken"}}})
	for name, refusal := range map[string]error{
		"invalid":    bad.Err(),
		"python":     status.Error(codes.FailedPrecondition, "check_order_status is a Python tool of this server"),
		"role":       status.Error(codes.PermissionDenied, "an integration key may not serve tools"),
		"key":        status.Error(codes.Unauthenticated, "unknown key"),
		"old server": status.Error(codes.Unimplemented, "unknown service"),
	} {
		t.Run(name, func(t *testing.T) {
			var streams atomic.Int32
			target := serveWorkers(t, func(t *testing.T, stream workerStreamServer) error {
				streams.Add(1)
				_, _ = stream.Recv()
				return refusal
			})
			w := newWorker(t, WorkerOptions{Targets: []string{target}}, orderTool)
			err := runWorker(t, w)()
			if Code(err) != status.Code(refusal) || !strings.Contains(err.Error(), target) {
				t.Errorf("Run: %v, want %v", err, refusal)
			}
			if name == "invalid" && (len(FieldViolations(err)) != 1 || FieldViolations(err)[0].GetField() != "declare.tools[0].name") {
				t.Errorf("field violations %v", FieldViolations(err))
			}
			if n := streams.Load(); n != 1 {
				t.Errorf("%d streams: a refusal must not be retried", n)
			}
		})
	}
}

func TestWorkerServesEveryTargetAndARefusalStopsAll(t *testing.T) {
	gate := make(chan struct{})
	a := serveWorkers(t, func(t *testing.T, stream workerStreamServer) error {
		accept(t, stream, "a-1", time.Minute)
		for {
			msg, err := next(stream)
			if err != nil {
				return nil // drained by the other target's refusal
			}
			_ = msg
		}
	})
	b := serveWorkers(t, func(t *testing.T, stream workerStreamServer) error {
		_, _ = stream.Recv()
		<-gate
		return status.Error(codes.FailedPrecondition, "a Python tool here")
	})
	w := newWorker(t, WorkerOptions{Targets: []string{a, b}}, orderTool)
	wait := runWorker(t, w)
	select {
	case <-w.Accepted():
		t.Fatal("accepted before every target answered")
	case <-time.After(100 * time.Millisecond):
	}
	close(gate)
	if err := wait(); !IsFailedPrecondition(err) || !strings.Contains(err.Error(), b) {
		t.Errorf("Run: %v", err)
	}
	if w.WorkerIDs()[a] != "a-1" {
		t.Errorf("ids %v", w.WorkerIDs())
	}
}

func TestWorkerStopsBeforeAcceptedAndContextDrains(t *testing.T) {
	target := serveWorkers(t, func(t *testing.T, stream workerStreamServer) error {
		_, _ = stream.Recv()
		<-stream.Context().Done() // never answers the declaration
		return nil
	})
	w := newWorker(t, WorkerOptions{Targets: []string{target}}, orderTool)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after ctx's end")
	}
	if err := w.Run(context.Background()); err == nil {
		t.Error("a second Run must fail")
	}
}

func TestNewToolWorkerValidates(t *testing.T) {
	for name, o := range map[string]WorkerOptions{
		"no targets": {},
		"limit":      {Targets: []string{"127.0.0.1:1"}, MaxConcurrentCalls: 1001},
	} {
		if _, err := NewToolWorker(o, orderTool); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := NewToolWorker(WorkerOptions{Targets: []string{"127.0.0.1:1"}}); err == nil {
		t.Error("no tools: no error")
	}
	if _, err := NewToolWorker(WorkerOptions{Targets: []string{"127.0.0.1:1"}}, orderTool, orderTool); err == nil {
		t.Error("a tool twice: no error")
	}
	if _, err := NewToolWorker(WorkerOptions{Targets: []string{"127.0.0.1:1"}}, &Tool{Name: "x"}); err == nil {
		t.Error("a Tool literal: no error")
	}
}

func TestWorkerHeartbeatsBothWays(t *testing.T) {
	// The server heartbeats every 100 ms for 8 intervals (over twice the silence limit): the
	// worker stays on the stream and sends heartbeats of its own at that interval.
	const interval = 100 * time.Millisecond
	fromWorker := make(chan int, 1)
	target := serveWorkers(t, func(t *testing.T, stream workerStreamServer) error {
		accept(t, stream, "w-1", interval)
		got := make(chan struct{}, 100)
		go func() {
			for {
				msg, err := stream.Recv()
				if err != nil {
					return
				}
				if msg.GetHeartbeat().GetTime() != nil {
					got <- struct{}{}
				}
			}
		}()
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		for range 8 {
			<-ticker.C
			_ = stream.Send(&batonv1.ServeToolsResponse{Kind: &batonv1.ServeToolsResponse_Heartbeat{
				Heartbeat: &batonv1.WorkerHeartbeat{Time: timestamppb.Now()}}})
		}
		fromWorker <- len(got)
		<-stream.Context().Done()
		return nil
	})
	var reconnects atomic.Int32
	w := newWorker(t, WorkerOptions{Targets: []string{target},
		OnReconnect: func(WorkerReconnect) { reconnects.Add(1) }}, orderTool)
	runWorker(t, w)
	select {
	case n := <-fromWorker:
		if n < 4 {
			t.Errorf("%d heartbeats from the worker in 8 intervals", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server's script did not finish")
	}
	if n := reconnects.Load(); n != 0 {
		t.Errorf("%d reconnects while the server heartbeats", n)
	}
}
