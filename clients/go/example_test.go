package baton_test

import (
	"context"
	"fmt"
	"log"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	baton "github.com/baton-dev/baton/clients/go"
	batonv1 "github.com/baton-dev/baton/clients/go/gen/baton/v1"
)

// The README's example; compiled by `go test`, not run (it needs a server).
func Example() {
	c, err := baton.Dial("127.0.0.1:8800") // plaintext; pass grpc.DialOptions for TLS
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	agent, _ := c.Agents.CreateAgent(ctx, &batonv1.CreateAgentRequest{Agent: &batonv1.Agent{Name: "Support bot"}})
	cust, _ := c.Customers.CreateCustomer(ctx, &batonv1.CreateCustomerRequest{Customer: &batonv1.Customer{Name: "Ada"}})
	s, err := c.Sessions.CreateSession(ctx, &batonv1.CreateSessionRequest{Session: &batonv1.Session{
		AgentId: agent.GetAgent().GetId(), CustomerId: cust.GetCustomer().GetId()}})
	if err != nil {
		log.Fatal(err)
	}
	sessionID := s.GetSession().GetId()

	go func() { // every event from offset 0 on, then live; reconnects and resumes by itself
		for ev, err := range baton.Follow(ctx, c.Events, sessionID, 0) {
			if err != nil {
				log.Print(err)
				return
			}
			fmt.Println(ev.GetOffset(), ev.GetKind(), ev.GetMessage().GetText())
		}
	}()

	_, err = c.Events.CreateEvent(ctx, &batonv1.CreateEventRequest{SessionId: sessionID,
		Kind: batonv1.EventKind_EVENT_KIND_MESSAGE, Source: batonv1.EventSource_EVENT_SOURCE_CUSTOMER,
		Data: &batonv1.CreateEventRequest_Message{Message: &batonv1.MessageData{Text: "Where is my parcel?"}}})
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.Sessions.UpdateSession(ctx, &batonv1.UpdateSessionRequest{SessionId: sessionID,
		Session:    &batonv1.Session{Mode: batonv1.SessionMode_SESSION_MODE_MANUAL},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"mode"}}})
	if err != nil {
		log.Fatal(err)
	}
}
