// Package baton is the Go client of Baton: a connection bundling the typed gRPC clients of the
// baton.v1 services (generated in github.com/baton-dev/baton/clients/go/gen/baton/v1) and Follow, a resuming
// subscription to a session's event log.
package baton

import (
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	batonv1 "github.com/baton-dev/baton/clients/go/gen/baton/v1"
)

// Client holds one connection to a Baton server and a typed client per service.
type Client struct {
	Conn      *grpc.ClientConn
	Agents    batonv1.AgentServiceClient
	Customers batonv1.CustomerServiceClient
	Sessions  batonv1.SessionServiceClient
	Events    batonv1.EventServiceClient
}

// Dial connects to target ("host:port"). Without options the connection is plaintext; pass
// grpc.WithTransportCredentials(...) for TLS. The connection is established lazily.
func Dial(target string, opts ...grpc.DialOption) (*Client, error) {
	if len(opts) == 0 {
		opts = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("baton: connect to %s: %w", target, err)
	}
	return NewClient(conn), nil
}

// NewClient wraps an existing connection.
func NewClient(conn *grpc.ClientConn) *Client {
	return &Client{
		Conn:      conn,
		Agents:    batonv1.NewAgentServiceClient(conn),
		Customers: batonv1.NewCustomerServiceClient(conn),
		Sessions:  batonv1.NewSessionServiceClient(conn),
		Events:    batonv1.NewEventServiceClient(conn),
	}
}

// Close closes the connection.
func (c *Client) Close() error { return c.Conn.Close() }
