// Command smoke checks the Go client against a live Baton server:
//
//	go run ./cmd/smoke -target HOST:PORT
//
// It prints one line per check and finally "N passed, N failed", and exits non-zero on any
// failure. With BATON_SMOKE_EXPECT_AI=1 it also waits for the AI agent's reply to the customer
// message. The same scenario is implemented by clients/typescript/src/smoke.ts.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"

	baton "github.com/baton-dev/baton/clients/go"
	batonv1 "github.com/baton-dev/baton/clients/go/gen/baton/v1"
)

const waitFor = 20 * time.Second // deadline of every wait and every call

var (
	mu             sync.Mutex
	passed, failed int
)

func check(name string, ok bool, detail string) bool {
	mu.Lock()
	defer mu.Unlock()
	if ok {
		passed++
		fmt.Printf("PASS %s\n", name)
	} else {
		failed++
		fmt.Printf("FAIL %s: %s\n", name, detail)
	}
	return ok
}

// collector ranges over a Follow sequence in the background so that checks can wait for events.
type collector struct {
	mu     sync.Mutex
	events []*batonv1.Event
	err    error
	wake   chan struct{} // closed and replaced on every change
}

func collect(seq func(func(*batonv1.Event, error) bool)) *collector {
	c := &collector{wake: make(chan struct{})}
	go func() {
		for ev, err := range seq {
			c.mu.Lock()
			if err != nil {
				c.err = err
			} else {
				c.events = append(c.events, ev)
			}
			close(c.wake)
			c.wake = make(chan struct{})
			c.mu.Unlock()
		}
	}()
	return c
}

// waitFor returns the first collected event matching pred, waiting up to waitFor; nil on timeout.
func (c *collector) waitFor(pred func(*batonv1.Event) bool) *batonv1.Event {
	deadline := time.After(waitFor)
	for {
		c.mu.Lock()
		for _, ev := range c.events {
			if pred(ev) {
				c.mu.Unlock()
				return ev
			}
		}
		wake, err := c.wake, c.err
		c.mu.Unlock()
		if err != nil {
			return nil
		}
		select {
		case <-wake:
		case <-deadline:
			return nil
		}
	}
}

func (c *collector) snapshot() ([]*batonv1.Event, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*batonv1.Event(nil), c.events...), c.err
}

// contiguous reports "" if the offsets of events are 0, 1, 2, ... without gap or duplicate.
func contiguous(events []*batonv1.Event) string {
	for i, ev := range events {
		if ev.GetOffset() != int64(i) {
			return fmt.Sprintf("expected offset %d, got %d", i, ev.GetOffset())
		}
	}
	return ""
}

// faultInjector breaks the first `failures` ListEvents streams with Unavailable after their
// first response, and makes every reconnect ask for offset 0 again, so that the server replays
// events the follower already delivered: Follow must drop those and deliver each event once.
type faultInjector struct {
	failures int32
	calls    atomic.Int32
}

func (f *faultInjector) intercept(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn,
	method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if !strings.HasSuffix(method, "/ListEvents") {
		return streamer(ctx, desc, cc, method, opts...)
	}
	call := f.calls.Add(1)
	ctx, cancel := context.WithCancel(ctx)
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		cancel()
		return nil, err
	}
	return &faultyStream{ClientStream: s, cancel: cancel, replay: call > 1, fail: call <= f.failures}, nil
}

type faultyStream struct {
	grpc.ClientStream
	cancel       context.CancelFunc
	replay, fail bool
	received     int
}

func (s *faultyStream) SendMsg(m any) error {
	if req, ok := m.(*batonv1.ListEventsRequest); ok && s.replay {
		req = &batonv1.ListEventsRequest{
			SessionId: req.GetSessionId(), MinOffset: 0, Kinds: req.GetKinds(),
			Sources: req.GetSources(), Follow: req.GetFollow(),
		}
		m = req
	}
	return s.ClientStream.SendMsg(m)
}

func (s *faultyStream) RecvMsg(m any) error {
	if s.fail && s.received >= 1 {
		s.cancel()
		return status.Error(codes.Unavailable, "injected by smoke test")
	}
	err := s.ClientStream.RecvMsg(m)
	if err == nil {
		s.received++
	}
	return err
}

func run(target string, expectAI bool) error {
	client, err := baton.Dial(target)
	if err != nil {
		return err
	}
	defer client.Close()
	bg, stop := context.WithCancel(context.Background())
	defer stop()
	var cancels []context.CancelFunc
	defer func() {
		for _, cancel := range cancels {
			cancel()
		}
	}()
	rpc := func() context.Context { // a fresh deadline for each call
		ctx, cancel := context.WithTimeout(bg, waitFor)
		cancels = append(cancels, cancel)
		return ctx
	}

	// 1. Agent, customer, session.
	agentResp, err := client.Agents.CreateAgent(rpc(), &batonv1.CreateAgentRequest{
		Agent: &batonv1.Agent{Name: "smoke-go agent"}})
	if err != nil {
		return fmt.Errorf("CreateAgent: %w", err)
	}
	customerResp, err := client.Customers.CreateCustomer(rpc(), &batonv1.CreateCustomerRequest{
		Customer: &batonv1.Customer{Name: "smoke-go customer"}})
	if err != nil {
		return fmt.Errorf("CreateCustomer: %w", err)
	}
	sessionResp, err := client.Sessions.CreateSession(rpc(), &batonv1.CreateSessionRequest{
		Session: &batonv1.Session{AgentId: agentResp.GetAgent().GetId(),
			CustomerId: customerResp.GetCustomer().GetId(), Title: "smoke-go"}})
	if err != nil {
		return fmt.Errorf("CreateSession: %w", err)
	}
	session := sessionResp.GetSession()
	check("create agent, customer and session",
		agentResp.GetAgent().GetId() != "" && customerResp.GetCustomer().GetId() != "" &&
			session.GetId() != "" && session.GetMode() == batonv1.SessionMode_SESSION_MODE_AUTO,
		fmt.Sprintf("session=%v", session))

	// 2. Follow the session from offset 0: the log starts with a system event.
	var reconnects atomic.Int32
	live := collect(baton.Follow(bg, client.Events, session.GetId(), 0,
		baton.WithOnReconnect(func(baton.ReconnectInfo) { reconnects.Add(1) })))
	first := live.waitFor(func(e *batonv1.Event) bool { return e.GetOffset() == 0 })
	check("follow delivers the system event at offset 0",
		first.GetSource() == batonv1.EventSource_EVENT_SOURCE_SYSTEM, fmt.Sprintf("got %v", first))

	// 3. A customer message arrives on the stream.
	created, err := client.Events.CreateEvent(rpc(), &batonv1.CreateEventRequest{
		SessionId: session.GetId(),
		Kind:      batonv1.EventKind_EVENT_KIND_MESSAGE,
		Source:    batonv1.EventSource_EVENT_SOURCE_CUSTOMER,
		Data: &batonv1.CreateEventRequest_Message{Message: &batonv1.MessageData{
			Text: "Hello from the Go smoke test"}},
	})
	if err != nil {
		return fmt.Errorf("CreateEvent (customer): %w", err)
	}
	customerEvent := created.GetEvent()
	seen := live.waitFor(func(e *batonv1.Event) bool { return e.GetId() == customerEvent.GetId() })
	check("customer message arrives on the stream",
		seen.GetKind() == batonv1.EventKind_EVENT_KIND_MESSAGE &&
			seen.GetSource() == batonv1.EventSource_EVENT_SOURCE_CUSTOMER &&
			seen.GetOffset() == customerEvent.GetOffset(),
		fmt.Sprintf("got %v", seen))

	// 4. Optional: the AI agent answers it, in the same correlation.
	if expectAI {
		reply := live.waitFor(func(e *batonv1.Event) bool {
			return e.GetKind() == batonv1.EventKind_EVENT_KIND_MESSAGE &&
				e.GetSource() == batonv1.EventSource_EVENT_SOURCE_AI_AGENT &&
				e.GetCorrelationId() == customerEvent.GetId()
		})
		check("AI reply arrives with the customer message's correlation id", reply != nil,
			fmt.Sprintf("no AI message with correlation_id %s within %s", customerEvent.GetId(), waitFor))
	}

	// 5. Hand the session over to humans.
	setMode := func(mode batonv1.SessionMode) (*batonv1.Session, error) {
		resp, err := client.Sessions.UpdateSession(rpc(), &batonv1.UpdateSessionRequest{
			SessionId:  session.GetId(),
			Session:    &batonv1.Session{Mode: mode},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"mode"}},
		})
		return resp.GetSession(), err
	}
	manual, err := setMode(batonv1.SessionMode_SESSION_MODE_MANUAL)
	check("UpdateSession to MANUAL", err == nil &&
		manual.GetMode() == batonv1.SessionMode_SESSION_MODE_MANUAL, fmt.Sprintf("%v %v", manual, err))

	// 6. A human agent's message arrives with its participant.
	participant := &batonv1.Participant{Id: "hum_smoke_go", DisplayName: "Smoke Tester (Go)"}
	created, err = client.Events.CreateEvent(rpc(), &batonv1.CreateEventRequest{
		SessionId: session.GetId(),
		Kind:      batonv1.EventKind_EVENT_KIND_MESSAGE,
		Source:    batonv1.EventSource_EVENT_SOURCE_HUMAN_AGENT,
		Data: &batonv1.CreateEventRequest_Message{Message: &batonv1.MessageData{
			Text: "A human here", Participant: participant}},
	})
	if err != nil {
		return fmt.Errorf("CreateEvent (human): %w", err)
	}
	humanID := created.GetEvent().GetId()
	human := live.waitFor(func(e *batonv1.Event) bool { return e.GetId() == humanID })
	p := human.GetMessage().GetParticipant()
	check("human agent message arrives with its participant",
		human.GetSource() == batonv1.EventSource_EVENT_SOURCE_HUMAN_AGENT &&
			p.GetId() == participant.GetId() && p.GetDisplayName() == participant.GetDisplayName(),
		fmt.Sprintf("got %v", human))

	// 7. Back to the AI agent.
	auto, err := setMode(batonv1.SessionMode_SESSION_MODE_AUTO)
	check("UpdateSession back to AUTO", err == nil &&
		auto.GetMode() == batonv1.SessionMode_SESSION_MODE_AUTO, fmt.Sprintf("%v %v", auto, err))

	// 8. Error path: an unknown session is NOT_FOUND.
	_, err = client.Sessions.GetSession(rpc(), &batonv1.GetSessionRequest{SessionId: "ses_does_not_exist"})
	check("GetSession of an unknown id is NOT_FOUND", status.Code(err) == codes.NotFound,
		fmt.Sprintf("got %v", err))

	// 9. Resume: a follow whose streams break (and get replayed from 0) still delivers every
	//    offset once, in order, including an event appended after the reconnects.
	faults := &faultInjector{failures: 3}
	flaky, err := baton.Dial(target, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStreamInterceptor(faults.intercept))
	if err != nil {
		return err
	}
	defer flaky.Close()
	resumed := collect(baton.Follow(bg, flaky.Events, session.GetId(), 0,
		baton.WithBackoff(20*time.Millisecond, time.Second)))
	healthy := false
	for deadline := time.Now().Add(waitFor); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if faults.calls.Load() > faults.failures {
			healthy = true
			break
		}
	}
	custom, _ := structpb.NewStruct(map[string]any{"type": "smoke.ping"})
	created, err = client.Events.CreateEvent(rpc(), &batonv1.CreateEventRequest{
		SessionId: session.GetId(),
		Kind:      batonv1.EventKind_EVENT_KIND_CUSTOM,
		Source:    batonv1.EventSource_EVENT_SOURCE_SYSTEM,
		Data:      &batonv1.CreateEventRequest_Custom{Custom: custom},
	})
	if err != nil {
		return fmt.Errorf("CreateEvent (ping): %w", err)
	}
	ping := created.GetEvent()
	pinged := resumed.waitFor(func(e *batonv1.Event) bool { return e.GetId() == ping.GetId() })
	events, ferr := resumed.snapshot()
	var upTo []*batonv1.Event
	for _, ev := range events {
		if ev.GetOffset() <= ping.GetOffset() {
			upTo = append(upTo, ev)
		}
	}
	gap := contiguous(upTo)
	check("resumed follow: offsets 0.. contiguous, no duplicates, across 3 reconnects",
		healthy && pinged != nil && gap == "" && int64(len(upTo)) == ping.GetOffset()+1,
		fmt.Sprintf("%d calls, %d events, ping at %d; %s %v",
			faults.calls.Load(), len(events), ping.GetOffset(), gap, ferr))

	// 10. The live follower saw the same, without duplicates.
	live.waitFor(func(e *batonv1.Event) bool { return e.GetId() == ping.GetId() })
	events, ferr = live.snapshot()
	gap = contiguous(events)
	check("live follow: offsets contiguous, no duplicates",
		gap == "" && int64(len(events)) > ping.GetOffset() && ferr == nil,
		fmt.Sprintf("%s %v reconnects=%d", gap, ferr, reconnects.Load()))
	return nil
}

func main() {
	target := flag.String("target", "127.0.0.1:8800", "host:port of the Baton server")
	flag.Parse()
	done := make(chan error, 1)
	go func() { done <- run(*target, os.Getenv("BATON_SMOKE_EXPECT_AI") == "1") }()
	select {
	case err := <-done:
		if err != nil {
			check("scenario ran to the end", false, err.Error())
		}
	case <-time.After(120 * time.Second):
		check("smoke test finished in time", false, "gave up after 120 s")
	}
	mu.Lock()
	defer mu.Unlock()
	fmt.Printf("%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		os.Exit(1)
	}
}
