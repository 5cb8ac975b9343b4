package baton

// The tool worker against a real Baton server (clients/tool-workers-smoke.sh runs it):
//
//	BATON_WORKER_TARGET=127.0.0.1:8800 BATON_WORKER_KEY=<tool_worker key> \
//	BATON_WORKER_INTEGRATION_KEY=<integration key> go test -run TestLiveWorker .
//
// Skipped when the variables are not set. The server must run the offline engine (as the smoke
// server does): a guideline naming the test's tools matches the customer's message, the turn
// calls them in the worker.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	batonv1 "github.com/baton-dev/baton/clients/go/gen/baton/v1"
)

type liveEnv struct {
	target, workerKey string
	integration       *Client
}

func live(t *testing.T) liveEnv {
	t.Helper()
	e := liveEnv{target: os.Getenv("BATON_WORKER_TARGET"), workerKey: os.Getenv("BATON_WORKER_KEY")}
	integrationKey := os.Getenv("BATON_WORKER_INTEGRATION_KEY")
	if e.target == "" || e.workerKey == "" || integrationKey == "" {
		t.Skip("set BATON_WORKER_TARGET, BATON_WORKER_KEY and BATON_WORKER_INTEGRATION_KEY to run against a server")
	}
	e.integration = dial(t, e.target, WithAPIKey(integrationKey))
	return e
}

// conversation creates an agent whose one guideline names tools, a customer and a session,
// follows the session and returns a function that posts a customer message.
func (e liveEnv) conversation(t *testing.T, ctx context.Context, condition string, tools ...string) (
	events <-chan *batonv1.Event, say func(text string) *batonv1.Event) {
	t.Helper()
	agent, err := e.integration.Agents.CreateAgent(ctx, &batonv1.CreateAgentRequest{
		Agent: &batonv1.Agent{Name: "Go live worker test " + t.Name()}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.integration.Guidelines.CreateGuideline(ctx, &batonv1.CreateGuidelineRequest{Guideline: &batonv1.Guideline{
		AgentId: agent.GetAgent().GetId(), Condition: condition, Action: "Run the tools and tell the customer",
		ToolNames: tools, Enabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	customer, err := e.integration.Customers.CreateCustomer(ctx, &batonv1.CreateCustomerRequest{
		Customer: &batonv1.Customer{Name: "live"}})
	if err != nil {
		t.Fatal(err)
	}
	session, err := e.integration.Sessions.CreateSession(ctx, &batonv1.CreateSessionRequest{Session: &batonv1.Session{
		AgentId: agent.GetAgent().GetId(), CustomerId: customer.GetCustomer().GetId()}})
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan *batonv1.Event, 100)
	go func() {
		for ev, err := range e.integration.Follow(ctx, session.GetSession().GetId(), 0) {
			if err != nil {
				close(ch)
				return
			}
			ch <- ev
		}
	}()
	return ch, func(text string) *batonv1.Event {
		resp, err := e.integration.Events.CreateEvent(ctx, &batonv1.CreateEventRequest{
			SessionId: session.GetSession().GetId(), Kind: batonv1.EventKind_EVENT_KIND_MESSAGE,
			Source: batonv1.EventSource_EVENT_SOURCE_CUSTOMER,
			Data:   &batonv1.CreateEventRequest_Message{Message: &batonv1.MessageData{Text: text}}})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetEvent()
	}
}

// toolEvent waits for the TOOL event of a turn and returns its calls by tool name.
func toolEvent(t *testing.T, events <-chan *batonv1.Event, correlation string) map[string]*batonv1.ToolCall {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("follow ended")
			}
			if ev.GetKind() == batonv1.EventKind_EVENT_KIND_TOOL && ev.GetCorrelationId() == correlation {
				calls := map[string]*batonv1.ToolCall{}
				for _, c := range ev.GetTool().GetToolCalls() {
					calls[c.GetName()] = c
				}
				return calls
			}
		case <-deadline:
			t.Fatal("no TOOL event within 30 s")
		}
	}
}

// waitListed waits until ListTools shows the tool served by workerID.
func (e liveEnv) waitListed(t *testing.T, ctx context.Context, tool, workerID string) *batonv1.Tool {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := e.integration.Tools.ListTools(ctx, &batonv1.ListToolsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, tl := range resp.GetTools() {
			for _, w := range tl.GetWorkers() {
				if tl.GetName() == tool && w.GetWorkerId() == workerID {
					return tl
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("ListTools does not show %s served by %s within 30 s", tool, workerID)
		}
	}
}

type probeArgs struct {
	Topic string `json:"topic" description:"what the customer asked about"`
}

func TestLiveWorker(t *testing.T) {
	e := live(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	suffix := fmt.Sprintf("%d", time.Now().UnixNano()%1_000_000)

	var mu sync.Mutex
	var probeCall ToolCall
	stallEnded := make(chan error, 1)
	slowStarted, release := make(chan struct{}, 1), make(chan struct{})
	probe := MustTool("go_live_probe_"+suffix, "Answers the live probe",
		func(_ context.Context, call ToolCall, a probeArgs) (ToolResult, error) {
			mu.Lock()
			probeCall = call
			mu.Unlock()
			return ToolResult{Data: map[string]any{"topic": a.Topic, "served_by": "go"}}, nil
		})
	stall := MustTool("go_live_stall_"+suffix, "Never answers in time",
		func(ctx context.Context, _ ToolCall, _ struct{}) (ToolResult, error) {
			<-ctx.Done()
			stallEnded <- context.Cause(ctx)
			return ToolResult{}, ctx.Err()
		}, WithToolTimeout(time.Second))
	slow := MustTool("go_live_slow_"+suffix, "Finishes while the worker drains",
		func(context.Context, ToolCall, struct{}) (ToolResult, error) {
			slowStarted <- struct{}{}
			<-release
			return ToolResult{Data: "finished during the drain"}, nil
		})
	w, err := NewToolWorker(WorkerOptions{Targets: []string{e.target}, Dial: []Option{WithAPIKey(e.workerKey)},
		Name: "go-live-test", MaxConcurrentCalls: 4, Logger: quietLogger()}, probe, stall, slow)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	defer w.Stop()
	waitClosed(t, w.Accepted(), "accepted by the server")
	listed := e.waitListed(t, ctx, probe.Name, w.WorkerIDs()[e.target])
	if listed.GetOrigin() != batonv1.ToolOrigin_TOOL_ORIGIN_WORKER ||
		listed.GetParameters().AsMap()["properties"].(map[string]any)["topic"] == nil {
		t.Errorf("ListTools shows %v", listed)
	}

	// A turn calls the probe (result) and the stall (deadline: a tool error; its ctx ends).
	events, say := e.conversation(t, ctx, "The customer asks about the live probe", probe.Name, stall.Name)
	msg := say("Tell me about the live probe please")
	calls := toolEvent(t, events, msg.GetCorrelationId())
	if r := calls[probe.Name].GetResult().GetStructValue().AsMap(); r["served_by"] != "go" || calls[probe.Name].GetError() != "" {
		t.Errorf("probe call %v", calls[probe.Name])
	}
	if calls[stall.Name].GetError() == "" {
		t.Errorf("stall call %v: want a timeout error", calls[stall.Name])
	}
	select {
	case cause := <-stallEnded:
		if !errors.Is(cause, context.DeadlineExceeded) && !errors.Is(cause, ErrCallCancelled) {
			t.Errorf("stall's ctx ended with %v", cause)
		}
	case <-time.After(10 * time.Second):
		t.Error("the stalled handler's ctx did not end")
	}
	mu.Lock()
	if probeCall.SessionID == "" || probeCall.CorrelationID != msg.GetCorrelationId() || probeCall.Attempt != 1 ||
		probeCall.Deadline.Before(time.Now().Add(-time.Minute)) || probeCall.WorkerID != w.WorkerIDs()[e.target] {
		t.Errorf("the probe was told %+v", probeCall)
	}
	mu.Unlock()

	// Stop with a call in flight: the call finishes, its result reaches the TOOL event, Run
	// returns nil.
	events2, say2 := e.conversation(t, ctx, "The customer asks about the slow probe", slow.Name)
	msg2 := say2("Tell me about the slow probe please")
	select {
	case <-slowStarted:
	case <-time.After(30 * time.Second):
		t.Fatal("the slow tool was not called")
	}
	w.Stop()
	close(release)
	calls2 := toolEvent(t, events2, msg2.GetCorrelationId())
	if c := calls2[slow.Name]; c.GetResult().GetStringValue() != "finished during the drain" {
		t.Errorf("slow call %v", c)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after the drain: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after the drain")
	}
}

func TestLiveWorkerRefusesAKeyOfAnotherRole(t *testing.T) {
	e := live(t)
	w, err := NewToolWorker(WorkerOptions{Targets: []string{e.target},
		Dial:   []Option{WithAPIKey(os.Getenv("BATON_WORKER_INTEGRATION_KEY"))},
		Logger: quietLogger()}, orderTool)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = w.Run(ctx)
	if !IsPermissionDenied(err) {
		t.Errorf("an integration key serving tools: %v, want PERMISSION_DENIED", err)
	}
}

func TestLiveWorkerRefusesABadDeclaration(t *testing.T) {
	e := live(t)
	long := MustTool("go_live_long", strings.Repeat("x", 4001), noop)
	w, err := NewToolWorker(WorkerOptions{Targets: []string{e.target}, Dial: []Option{WithAPIKey(e.workerKey)},
		Name: strings.Repeat("n", 101), Logger: quietLogger()}, long)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = w.Run(ctx)
	fields := map[string]bool{}
	for _, v := range FieldViolations(err) {
		fields[v.GetField()] = true
	}
	if !IsInvalidArgument(err) || !fields["declare.worker_name"] || !fields["declare.tools[0].description"] {
		t.Errorf("a 101-character name and a 4001-character description: %v (fields %v)", err, fields)
	}
}
