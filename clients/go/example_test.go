package baton_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	baton "github.com/baton-dev/baton/clients/go"
	batonv1 "github.com/baton-dev/baton/clients/go/gen/baton/v1"
)

// The README's examples; compiled by `go test`, not run (they need a server).
func Example() {
	ctx := context.Background()
	// An integration (CRM, widget backend) with an API key. 127.0.0.1 is plaintext by default;
	// a remote host is TLS (system roots, or baton.WithCACert(pem) for your own CA).
	c, err := baton.Dial("127.0.0.1:8800", baton.WithAPIKey(os.Getenv("BATON_API_KEY")))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	agent, err := c.Agents.CreateAgent(ctx, &batonv1.CreateAgentRequest{Agent: &batonv1.Agent{Name: "Support bot"}})
	if err != nil {
		log.Fatalf("%v (reason %s)", err, baton.Reason(err))
	}
	cust, _ := c.Customers.CreateCustomer(ctx, &batonv1.CreateCustomerRequest{Customer: &batonv1.Customer{Name: "Ada"}})

	// The customer's side: tokens issued through the integration, refreshed when they expire.
	customer, err := baton.Dial("127.0.0.1:8800",
		baton.WithTokenSource(baton.CustomerTokenSource(c.Auth, cust.GetCustomer().GetId(), 0)))
	if err != nil {
		log.Fatal(err)
	}
	defer customer.Close()
	s, err := customer.Sessions.CreateSession(ctx, &batonv1.CreateSessionRequest{Session: &batonv1.Session{
		AgentId: agent.GetAgent().GetId(), CustomerId: cust.GetCustomer().GetId()}})
	if err != nil {
		log.Fatal(err)
	}
	sessionID := s.GetSession().GetId()

	go func() { // every event from offset 0 on, then live; reconnects and resumes by itself
		for ev, err := range customer.Follow(ctx, sessionID, 0) {
			if err != nil {
				log.Print(err)
				return
			}
			fmt.Println(ev.GetOffset(), ev.GetSource(), ev.GetMessage().GetText())
		}
	}()

	// Retried on UNAVAILABLE with the same client-generated idempotency key: appended once.
	_, err = customer.Events.CreateEvent(ctx, &batonv1.CreateEventRequest{SessionId: sessionID,
		Kind: batonv1.EventKind_EVENT_KIND_MESSAGE, Source: batonv1.EventSource_EVENT_SOURCE_CUSTOMER,
		Data: &batonv1.CreateEventRequest_Message{Message: &batonv1.MessageData{Text: "Can I talk to a human?"}}})
	if baton.IsInvalidArgument(err) {
		for _, v := range baton.FieldViolations(err) {
			log.Printf("%s: %s", v.GetField(), v.GetDescription())
		}
	}
}

// An operator console: watch the inbox, claim what is requested, hand it back to the AI.
func ExampleWatchHandoffs() {
	ctx := context.Background()
	op, err := baton.Dial("baton.example.com:443", baton.WithAPIKey(os.Getenv("BATON_OPERATOR_KEY")))
	if err != nil {
		log.Fatal(err)
	}
	defer op.Close()
	olga := &batonv1.Participant{Id: "olga", DisplayName: "Olga"}
	for ch, err := range op.WatchHandoffs(ctx, &batonv1.WatchHandoffsRequest{Operator: olga}) {
		if err != nil {
			log.Fatal(err) // not retryable (e.g. PERMISSION_DENIED); UNAVAILABLE is resumed
		}
		h := ch.GetHandoff()
		fmt.Println(ch.GetPosition(), ch.GetType(), h.GetSessionId(), h.GetReason())
		if h.GetState() != batonv1.HandoffState_HANDOFF_STATE_PENDING {
			continue
		}
		if _, err := op.ClaimHandoff(ctx, h.GetId(), olga); baton.IsFailedPrecondition(err) {
			continue // another operator was faster
		} else if err != nil {
			log.Fatal(err)
		}
		callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = op.ReleaseHandoff(callCtx, h.GetId(), olga.GetId(),
			batonv1.HandoffOutcome_HANDOFF_OUTCOME_RETURNED_TO_AI, "answered the question")
		cancel()
		if err != nil {
			log.Printf("release: %s (%s)", baton.Code(err), baton.Reason(err))
		}
	}
}

// ExampleToolWorker serves a tool from Go (README, "Serving tools").
func ExampleToolWorker() {
	type OrderQuery struct {
		OrderID string `json:"order_id" description:"The order number"`
	}
	orderStatus := baton.MustTool("check_order_status", "Look up the delivery status of an order.",
		func(ctx context.Context, call baton.ToolCall, q OrderQuery) (baton.ToolResult, error) {
			if q.OrderID == "" {
				return baton.ToolResult{Data: map[string]any{"found": false}}, nil
			}
			return baton.ToolResult{Data: map[string]any{"found": true, "order": q.OrderID}}, nil
		}, baton.RetrySafe(), baton.WithToolTimeout(10*time.Second))
	handoff := baton.MustTool("initiate_human_handoff", "Hand the conversation to a human.",
		func(ctx context.Context, call baton.ToolCall, a struct {
			Reason string `json:"reason"`
		}) (baton.ToolResult, error) {
			return baton.ToolResult{Data: map[string]any{"handoff": "requested"}, Control: baton.HandOff(a.Reason)}, nil
		})
	w, err := baton.NewToolWorker(baton.WorkerOptions{
		Targets:            []string{"127.0.0.1:8800"}, // one stream to each replica
		Dial:               []baton.Option{baton.WithAPIKey(os.Getenv("BATON_WORKER_KEY"))},
		Name:               "orders",
		MaxConcurrentCalls: 8,
	}, orderStatus, handoff)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background()) // e.g. signal.NotifyContext
	defer cancel()
	if err := w.Run(ctx); err != nil { // the end of ctx drains and returns nil
		log.Fatalf("%s: %v", baton.Code(err), err)
	}
}
