// Command smoke runs the cross-language smoke scenario (clients/smoke-all.sh) with the Go
// client's public API against a live server with authentication on:
//
//	BATON_SMOKE_INTEGRATION_KEY=... BATON_SMOKE_OPERATOR_KEY=... BATON_SMOKE_OPERATOR_ID=olga \
//	BATON_SMOKE_RESTART='clients/smoke-server.sh restart DIR' go run ./cmd/smoke -target HOST:PORT
//
// It prints a line per step and "smoke go: ok" at the end; on the first failure it prints what
// was expected and exits 1. BATON_SMOKE_EXPECT_AI=1 also waits for the AI agent's answers.
// Every wait is on a condition with a deadline; the whole run has 90 s.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"sync"
	"time"

	baton "github.com/baton-dev/baton/clients/go"
	batonv1 "github.com/baton-dev/baton/clients/go/gen/baton/v1"
)

const (
	waitFor    = 30 * time.Second // deadline of each wait and each call
	overall    = 90 * time.Second
	tokenTTL   = 8 * time.Second // short, so that the run shows the provider being asked again
	tokenEarly = 3 * time.Second // refresh this long before expiry
)

func env(name string) string {
	v := os.Getenv(name)
	if v == "" {
		fail("environment variable %s is not set", name)
	}
	return v
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "smoke go: FAILED: "+format+"\n", args...)
	os.Exit(1)
}

func step(format string, args ...any) { fmt.Printf("smoke go: "+format+"\n", args...) }

// collector ranges over a sequence in the background so that steps can wait on what arrived.
type collector[T any] struct {
	mu    sync.Mutex
	items []T
	err   error
	wake  chan struct{} // closed and replaced on every change
}

func collect[T any](seq func(func(T, error) bool)) *collector[T] {
	c := &collector[T]{wake: make(chan struct{})}
	go func() {
		for item, err := range seq {
			c.mu.Lock()
			if err != nil {
				c.err = err
			} else {
				c.items = append(c.items, item)
			}
			close(c.wake)
			c.wake = make(chan struct{})
			c.mu.Unlock()
		}
	}()
	return c
}

// waitFor returns the first item matching pred, waiting up to waitFor; it fails the run on
// timeout or when the sequence ended with an error.
func (c *collector[T]) waitFor(what string, pred func(T) bool) T {
	deadline := time.After(waitFor)
	for {
		c.mu.Lock()
		for _, it := range c.items {
			if pred(it) {
				c.mu.Unlock()
				return it
			}
		}
		wake, err := c.wake, c.err
		c.mu.Unlock()
		if err != nil {
			fail("waiting for %s: the stream ended: %v (code %v, reason %q)", what, err, baton.Code(err), baton.Reason(err))
		}
		select {
		case <-wake:
		case <-deadline:
			fail("timed out after %s waiting for %s", waitFor, what)
		}
	}
}

func (c *collector[T]) snapshot() []T {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.items)
}

func call() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	time.AfterFunc(waitFor, cancel)
	return ctx
}

func message(sessionID string, source batonv1.EventSource, text string, p *batonv1.Participant) *batonv1.CreateEventRequest {
	return &batonv1.CreateEventRequest{
		SessionId: sessionID,
		Kind:      batonv1.EventKind_EVENT_KIND_MESSAGE,
		Source:    source,
		Data:      &batonv1.CreateEventRequest_Message{Message: &batonv1.MessageData{Text: text, Participant: p}},
	}
}

func must[T any](v T, err error) func(string) T {
	return func(what string) T {
		if err != nil {
			fail("%s: %v (code %v, reason %q)", what, err, baton.Code(err), baton.Reason(err))
		}
		return v
	}
}

func run(target string) {
	integrationKey := env("BATON_SMOKE_INTEGRATION_KEY")
	operatorKey := env("BATON_SMOKE_OPERATOR_KEY")
	operatorID := env("BATON_SMOKE_OPERATOR_ID")
	restart := env("BATON_SMOKE_RESTART")
	expectAI := os.Getenv("BATON_SMOKE_EXPECT_AI") == "1"
	bg, stop := context.WithCancel(context.Background())
	defer stop()

	// 1. The integration creates what the conversation needs and issues a customer token.
	integration := must(baton.Dial(target, baton.WithAPIKey(integrationKey)))("dial (integration)")
	defer integration.Close()
	agent := must(integration.Agents.CreateAgent(call(), &batonv1.CreateAgentRequest{
		Agent: &batonv1.Agent{Name: "Smoke agent (go)"}}))("CreateAgent").GetAgent()
	guideline := must(integration.Guidelines.CreateGuideline(call(), &batonv1.CreateGuidelineRequest{
		Guideline: &batonv1.Guideline{AgentId: agent.GetId(), Condition: "The customer asks for a human",
			Action:    "Tell the customer you are connecting them with a colleague",
			ToolNames: []string{"initiate_human_handoff"}, Enabled: true}}))("CreateGuideline").GetGuideline()
	customer := must(integration.Customers.CreateCustomer(call(), &batonv1.CreateCustomerRequest{
		Customer: &batonv1.Customer{Name: "Smoke customer (go)"}}))("CreateCustomer").GetCustomer()
	session := must(integration.Sessions.CreateSession(call(), &batonv1.CreateSessionRequest{
		Session: &batonv1.Session{AgentId: agent.GetId(), CustomerId: customer.GetId()}}))("CreateSession").GetSession()
	first := must(integration.Auth.IssueCustomerToken(call(), &batonv1.IssueCustomerTokenRequest{
		CustomerId: customer.GetId()}))("IssueCustomerToken")
	if first.GetToken() == "" {
		fail("IssueCustomerToken returned an empty token")
	}
	step("1. agent %s, guideline %s, customer %s, session %s, token expiring %s", agent.GetId(),
		guideline.GetId(), customer.GetId(), session.GetId(), first.GetExpireTime().AsTime().Format(time.TimeOnly))

	// 2. The customer's client asks a provider for its token when it needs one: the provider
	// issues short-lived tokens through the integration client, cached until shortly before
	// they expire.
	tokens := baton.ReuseTokenSource(baton.IssuedTokenSource(integration.Auth, customer.GetId(), tokenTTL), tokenEarly)
	cust := must(baton.Dial(target, baton.WithTokenSource(tokens)))("dial (customer)")
	defer cust.Close()
	var mu sync.Mutex
	reconnects := map[string]int{}
	onReconnect := func(name string) baton.FollowOption {
		return baton.WithOnReconnect(func(baton.ReconnectInfo) { mu.Lock(); reconnects[name]++; mu.Unlock() })
	}
	follow := collect(cust.Follow(bg, session.GetId(), 0, onReconnect("customer follow")))
	// The integration follows too: its view has every event, so its offsets are 0..n.
	staffFollow := collect(integration.Follow(bg, session.GetId(), 0, onReconnect("integration follow")))
	follow.waitFor("event at offset 0 on the customer's follow", func(e *batonv1.Event) bool { return e.GetOffset() == 0 })
	ask := must(cust.Events.CreateEvent(call(), message(session.GetId(), batonv1.EventSource_EVENT_SOURCE_CUSTOMER,
		"Can I talk to a human please?", nil)))("CreateEvent (customer asks for a human)").GetEvent()
	follow.waitFor("the customer's message on the follow", func(e *batonv1.Event) bool { return e.GetId() == ask.GetId() })
	step("2. customer token from the provider (%d fetched); follow delivered offset 0 and the message at %d",
		tokens.Fetches(), ask.GetOffset())

	// 3. The operator watches the inbox, claims the handoff the tool opened, writes, releases.
	op := must(baton.Dial(target, baton.WithAPIKey(operatorKey)))("dial (operator)")
	defer op.Close()
	olga := &batonv1.Participant{Id: operatorID, DisplayName: "Olga"}
	inbox := collect(op.WatchHandoffs(bg, &batonv1.WatchHandoffsRequest{Operator: olga}, onReconnect("inbox watch")))
	pending := inbox.waitFor("a PENDING handoff for the session in the inbox", func(c *batonv1.HandoffChange) bool {
		return c.GetHandoff().GetSessionId() == session.GetId() &&
			c.GetHandoff().GetState() == batonv1.HandoffState_HANDOFF_STATE_PENDING
	}).GetHandoff()
	claimed := must(op.ClaimHandoff(call(), pending.GetId(), olga))("ClaimHandoff")
	if claimed.GetState() != batonv1.HandoffState_HANDOFF_STATE_CLAIMED || claimed.GetOperator().GetId() != operatorID {
		fail("ClaimHandoff: handoff is %v held by %q, want CLAIMED by %q", claimed.GetState(), claimed.GetOperator().GetId(), operatorID)
	}
	hello := must(op.Events.CreateEvent(call(), message(session.GetId(), batonv1.EventSource_EVENT_SOURCE_HUMAN_AGENT,
		"Hi, this is Olga. How can I help?", olga)))("CreateEvent (operator)").GetEvent()
	seen := follow.waitFor("the operator's message on the customer's follow", func(e *batonv1.Event) bool { return e.GetId() == hello.GetId() })
	if seen.GetSource() != batonv1.EventSource_EVENT_SOURCE_HUMAN_AGENT || seen.GetMessage().GetParticipant().GetDisplayName() != "Olga" {
		fail("operator message seen as %v", seen)
	}
	released := must(op.ReleaseHandoff(call(), pending.GetId(), operatorID,
		batonv1.HandoffOutcome_HANDOFF_OUTCOME_RETURNED_TO_AI, "smoke go: back to the AI"))("ReleaseHandoff")
	if released.GetState() != batonv1.HandoffState_HANDOFF_STATE_ENDED {
		fail("ReleaseHandoff: state %v, want ENDED", released.GetState())
	}
	step("3. inbox showed handoff %s (requested by %v); claimed by %s, message at %d reached the customer, released %v",
		pending.GetId(), pending.GetRequestedBy(), operatorID, hello.GetOffset(), released.GetOutcome())

	// 4. Back with the AI: it answers the next question.
	order := must(cust.Events.CreateEvent(call(), message(session.GetId(), batonv1.EventSource_EVENT_SOURCE_CUSTOMER,
		"Where is my order 12345?", nil)))("CreateEvent (order question)").GetEvent()
	if expectAI {
		reply := follow.waitFor("an AI_AGENT message after the order question", func(e *batonv1.Event) bool {
			return e.GetOffset() > order.GetOffset() && e.GetKind() == batonv1.EventKind_EVENT_KIND_MESSAGE &&
				e.GetSource() == batonv1.EventSource_EVENT_SOURCE_AI_AGENT
		})
		step("4. AI answered at offset %d: %q", reply.GetOffset(), reply.GetMessage().GetText())
	} else {
		step("4. order question at offset %d (AI answer not awaited)", order.GetOffset())
	}

	// 5. A wrong key: UNAUTHENTICATED, with the ErrorInfo reason.
	wrong := must(baton.Dial(target, baton.WithAPIKey("bk_key_0000000000000000_wrongwrongwrong")))("dial (wrong key)")
	_, err := wrong.Agents.ListAgents(call(), &batonv1.ListAgentsRequest{})
	wrong.Close()
	step("5. wrong key: code %v, reason %q (%s)", baton.Code(err), baton.Reason(err), baton.Message(err))
	if !baton.IsUnauthenticated(err) || baton.Reason(err) == "" {
		fail("wrong key: want UNAUTHENTICATED with an ErrorInfo reason, got %v", err)
	}

	// 6. Restart the server under the open follow and inbox watch.
	beforeRestart := inbox.snapshot()
	lastBefore := beforeRestart[len(beforeRestart)-1].GetPosition()
	started := time.Now()
	cmd := exec.Command("sh", "-c", restart)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fail("restart command %q: %v", restart, err)
	}
	step("6. server restarted in %s", time.Since(started).Round(time.Millisecond))
	// The customer's client asks its provider again once the cached token nears expiry: wait
	// for that instant (at most tokenTTL-tokenEarly after the fetch) so the run shows it.
	if t, ok := tokens.Cached(); ok && tokens.Fetches() < 2 {
		if d := time.Until(t.Expiry.Add(-tokenEarly)); d > 0 {
			<-time.After(d)
		}
	}
	still := must(cust.Events.CreateEvent(call(), message(session.GetId(), batonv1.EventSource_EVENT_SOURCE_CUSTOMER,
		"Are you still there?", nil)))("CreateEvent after the restart").GetEvent()
	again := must(cust.Events.CreateEvent(call(), message(session.GetId(), batonv1.EventSource_EVENT_SOURCE_CUSTOMER,
		"I want to talk to a person", nil)))("CreateEvent (asks for a person)").GetEvent()
	if tokens.Fetches() < 2 {
		fail("the token provider was not asked again (%d fetches)", tokens.Fetches())
	}
	// The offline lexical matcher shares no word between "I want to talk to a person" and the
	// guideline's condition, so the AI does not open a handoff for it: the widget backend does,
	// on the customer's behalf, as a "talk to a person" button would (ALREADY_EXISTS when an
	// AI that understood the request got there first).
	requested := "the AI"
	if resp, err := integration.Handoffs.RequestHandoff(call(), &batonv1.RequestHandoffRequest{
		SessionId: session.GetId(), Reason: "I want to talk to a person",
		RequestedBy: batonv1.HandoffRequester_HANDOFF_REQUESTER_CUSTOMER}); err == nil {
		requested = fmt.Sprintf("the integration on the customer's behalf (operators available: %v)", resp.GetOperatorsAvailable())
	} else if !baton.IsAlreadyExists(err) {
		fail("RequestHandoff: %v (code %v, reason %q)", err, baton.Code(err), baton.Reason(err))
	}
	follow.waitFor("the customer's post-restart message on the follow", func(e *batonv1.Event) bool { return e.GetId() == again.GetId() })
	change := inbox.waitFor("a change for the session's new handoff after the restart", func(c *batonv1.HandoffChange) bool {
		return c.GetPosition() > lastBefore && c.GetHandoff().GetSessionId() == session.GetId() &&
			c.GetHandoff().GetId() != pending.GetId()
	})
	step("   posted at %d and %d after the restart; handoff requested by %s; inbox change %v at position %d for handoff %s; %d tokens fetched",
		still.GetOffset(), again.GetOffset(), requested, change.GetType(), change.GetPosition(), change.GetHandoff().GetId(), tokens.Fetches())

	// Exactly once: each follow against a fresh read of the log with the same credentials.
	checkFollow := func(name string, c *baton.Client, col *collector[*batonv1.Event], contiguous bool) {
		stream, err := c.Events.ListEvents(call(), &batonv1.ListEventsRequest{SessionId: session.GetId()})
		if err != nil {
			fail("%s: ListEvents: %v", name, err)
		}
		var want []int64
		for {
			resp, err := stream.Recv()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					fail("%s: ListEvents: %v", name, err)
				}
				break
			}
			for _, e := range resp.GetEvents() {
				want = append(want, e.GetOffset())
			}
		}
		last := want[len(want)-1]
		col.waitFor(fmt.Sprintf("offset %d on the %s", last, name), func(e *batonv1.Event) bool { return e.GetOffset() >= last })
		var got []int64
		for _, e := range col.snapshot() {
			if e.GetOffset() <= last {
				got = append(got, e.GetOffset())
			}
		}
		if !slices.Equal(got, want) {
			fail("%s delivered offsets %v, the log has %v", name, got, want)
		}
		if contiguous {
			for i, o := range got {
				if o != int64(i) {
					fail("%s: offsets %v are not 0..%d", name, got, len(got)-1)
				}
			}
		}
		mu.Lock()
		n := reconnects[name]
		mu.Unlock()
		step("   %s: %d events, offsets as in the log (%d..%d), each once; %d reconnects", name, len(got), got[0], last, n)
	}
	checkFollow("customer follow", cust, follow, false)
	checkFollow("integration follow", integration, staffFollow, true)

	changes := inbox.snapshot()
	seenChange := map[string]bool{}
	var prev int64 = -1
	for _, c := range changes {
		key := fmt.Sprintf("%d/%v/%s", c.GetPosition(), c.GetType(), c.GetHandoff().GetId())
		if seenChange[key] {
			fail("inbox watch delivered %s twice", key)
		}
		seenChange[key] = true
		if c.GetType() == batonv1.HandoffChangeType_HANDOFF_CHANGE_TYPE_OPEN {
			continue // the snapshot's entries share its position
		}
		if c.GetPosition() <= prev {
			fail("inbox watch positions not strictly increasing: %d after %d", c.GetPosition(), prev)
		}
		prev = c.GetPosition()
	}
	mu.Lock()
	n := reconnects["inbox watch"]
	mu.Unlock()
	if n == 0 {
		fail("the inbox watch never reconnected across the restart")
	}
	step("   inbox watch: %d changes, positions strictly increasing up to %d, none twice; %d reconnects", len(changes), prev, n)
}

func main() {
	target := flag.String("target", os.Getenv("BATON_SMOKE_TARGET"), "host:port of the Baton server")
	flag.Parse()
	if *target == "" {
		fail("no target: -target HOST:PORT or BATON_SMOKE_TARGET")
	}
	time.AfterFunc(overall, func() { fail("gave up after %s", overall) })
	started := time.Now()
	run(*target)
	fmt.Printf("smoke go: ok (%s)\n", time.Since(started).Round(time.Millisecond))
}
