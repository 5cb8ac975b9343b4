// Package baton is the Go client of Baton: a connection bundling the typed gRPC clients of the
// baton.v1 services (generated in github.com/baton-dev/baton/clients/go/gen/baton/v1) with
// credentials (API keys, customer tokens from a provider), TLS, keepalive, retries, typed error
// helpers, and two resuming streams: Follow (a session's event log) and WatchHandoffs (the
// operator inbox).
//
//	c, err := baton.Dial("baton.example.com:8800", baton.WithAPIKey(os.Getenv("BATON_API_KEY")))
package baton

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	batonv1 "github.com/baton-dev/baton/clients/go/gen/baton/v1"
)

// Version is the version of this client (the module is tagged clients/go/vVERSION).
const Version = "0.2.0"

// Client holds one connection to a Baton server and a typed client per service.
type Client struct {
	Conn            *grpc.ClientConn
	Agents          batonv1.AgentServiceClient
	Customers       batonv1.CustomerServiceClient
	Sessions        batonv1.SessionServiceClient
	Events          batonv1.EventServiceClient
	Guidelines      batonv1.GuidelineServiceClient
	CannedResponses batonv1.CannedResponseServiceClient
	Tools           batonv1.ToolServiceClient
	Handoffs        batonv1.HandoffServiceClient
	Auth            batonv1.AuthServiceClient
}

// DefaultKeepalive is the keepalive Dial uses unless WithKeepalive says otherwise: a ping
// after 30 s without activity, the connection is declared dead when the answer takes over
// 10 s, also without calls in flight. The server accepts client pings every 10 s or more, so
// any Time >= 10 s is safe; below that the server would close the connection.
var DefaultKeepalive = keepalive.ClientParameters{
	Time:                30 * time.Second,
	Timeout:             10 * time.Second,
	PermitWithoutStream: true,
}

// DefaultConnectBackoff is the reconnect backoff Dial uses: quicker than gRPC's default
// (1 s base, 120 s cap), so that a restarted server is found again within seconds.
var DefaultConnectBackoff = backoff.Config{
	BaseDelay:  250 * time.Millisecond,
	Multiplier: 1.6,
	Jitter:     0.2,
	MaxDelay:   10 * time.Second,
}

// Option configures Dial.
type Option func(*dialConfig)

type transportMode int

const (
	transportDefault  transportMode = iota // TLS, or plaintext for a loopback target
	transportInsecure                      // plaintext, asked for explicitly
	transportTLS                           // TLS, asked for explicitly
)

type dialConfig struct {
	mode        transportMode
	tlsConfig   *tls.Config
	caPEMs      [][]byte
	creds       *bearerCredentials
	keepalive   keepalive.ClientParameters
	retries     bool
	retryInfo   int // attempts made for a RetryInfo pushback (0: off)
	maxPushback time.Duration
	idempotency bool
	dialOptions []grpc.DialOption
	err         error
}

// WithAPIKey sends key as `authorization: Bearer <key>` on every call (integration,
// operator or admin keys, "bk_key_...").
func WithAPIKey(key string) Option {
	return func(c *dialConfig) {
		if key == "" {
			c.err = errors.Join(c.err, errors.New("baton: WithAPIKey: empty key"))
			return
		}
		c.creds = &bearerCredentials{source: StaticToken(key)}
	}
}

// WithToken sends a fixed token (e.g. a customer token) as `authorization: Bearer <token>`.
// It is WithAPIKey under another name; for tokens that expire use WithTokenSource.
func WithToken(token string) Option { return WithAPIKey(token) }

// WithTokenSource asks src for the credential of each call (each attempt, each stream
// (re)connection). Wrap a source that calls the network in ReuseTokenSource so that it is asked
// only when the cached token is about to expire. When a call fails with UNAUTHENTICATED the
// client tells src to drop its cached token (if it implements Invalidate()), so the next call
// fetches a fresh one.
func WithTokenSource(src TokenSource) Option {
	return func(c *dialConfig) {
		if src == nil {
			c.err = errors.Join(c.err, errors.New("baton: WithTokenSource: nil source"))
			return
		}
		c.creds = &bearerCredentials{source: src}
	}
}

// WithTLS connects over TLS with cfg (nil: the system's root CAs). Set cfg.Certificates for
// mutual TLS (`baton serve --tls-client-ca`).
func WithTLS(cfg *tls.Config) Option {
	return func(c *dialConfig) {
		c.mode = transportTLS
		if cfg != nil {
			c.tlsConfig = cfg.Clone()
		}
	}
}

// WithCACert connects over TLS and trusts the CA certificates in pemCerts (PEM) for the
// server's certificate, instead of the system's roots; e.g. the CA that signed the server's
// `--tls-cert`. Combine with WithTLS to set other TLS fields (client certificates, ServerName).
func WithCACert(pemCerts []byte) Option {
	return func(c *dialConfig) {
		c.mode = transportTLS
		c.caPEMs = append(c.caPEMs, pemCerts)
	}
}

// WithInsecure connects in plaintext. Dial already does for a loopback target (127.0.0.0/8,
// ::1, localhost, unix sockets) when no TLS option is given; for any other target plaintext must
// be asked for with this option. Credentials are then sent in clear text: only use it on a
// network you trust (e.g. a sidecar, a private link).
func WithInsecure() Option {
	return func(c *dialConfig) { c.mode = transportInsecure }
}

// WithKeepalive replaces DefaultKeepalive. Time below 10 s makes the server close the
// connection for pinging too often.
func WithKeepalive(p keepalive.ClientParameters) Option {
	return func(c *dialConfig) { c.keepalive = p }
}

// WithoutRetries turns off the retry policy (UNAVAILABLE on calls safe to repeat) and the
// RetryInfo pushback retries.
func WithoutRetries() Option {
	return func(c *dialConfig) { c.retries, c.retryInfo = false, 0 }
}

// WithRetryInfo sets how many attempts a call gets in all when the server answers with a
// RetryInfo delay (e.g. RESOURCE_EXHAUSTED after too many failed authentications from this
// address), and the longest delay honoured (default 3 attempts, 30 s). Calls are only retried
// while their context's deadline leaves room for the delay. attempts <= 1 turns it off.
func WithRetryInfo(attempts int, maxDelay time.Duration) Option {
	return func(c *dialConfig) { c.retryInfo, c.maxPushback = max(attempts, 0), maxDelay }
}

// WithoutIdempotencyKeys stops Dial's interceptor from filling CreateEventRequest's empty
// idempotency_key. CreateEvent is then no longer retried on UNAVAILABLE.
func WithoutIdempotencyKeys() Option {
	return func(c *dialConfig) { c.idempotency = false }
}

// WithGRPCOptions passes gRPC dial options through, after Dial's own (so they win where they
// overlap, e.g. grpc.WithConnectParams, grpc.WithDefaultServiceConfig). Do not pass transport
// credentials here; use WithTLS / WithCACert / WithInsecure.
func WithGRPCOptions(opts ...grpc.DialOption) Option {
	return func(c *dialConfig) { c.dialOptions = append(c.dialOptions, opts...) }
}

// Dial connects to target ("host:port", or any gRPC target such as "dns:///host:port"). The
// connection is established lazily, on the first call.
//
// Transport: TLS with the system's roots unless an option says otherwise; plaintext by default
// only for a loopback target. Credentials (WithAPIKey, WithToken, WithTokenSource) are sent on
// every call, also over plaintext loopback or WithInsecure (gRPC refuses per-call credentials
// on a plaintext connection unless they declare they do not need transport security; Baton's do
// exactly when the plaintext was chosen as above, so they are never sent in clear by accident).
//
// Defaults: DefaultKeepalive, DefaultConnectBackoff, a retry policy (up to 5 attempts on
// UNAVAILABLE) for calls that are safe to repeat (reads, IssueCustomerToken, and CreateEvent,
// whose empty idempotency_key gets a random UUID, on a copy of the request), and retries after a
// RetryInfo delay.
func Dial(target string, opts ...Option) (*Client, error) {
	conn, err := DialConn(target, opts...)
	if err != nil {
		return nil, err
	}
	return NewClient(conn), nil
}

// DialConn is Dial returning the bare *grpc.ClientConn (e.g. to add your own service clients).
func DialConn(target string, opts ...Option) (*grpc.ClientConn, error) {
	cfg := dialConfig{
		keepalive:   DefaultKeepalive,
		retries:     true,
		retryInfo:   3,
		maxPushback: 30 * time.Second,
		idempotency: true,
	}
	for _, opt := range opts {
		opt(&cfg)
	}
	if cfg.err != nil {
		return nil, cfg.err
	}
	dialOpts, err := cfg.grpcOptions(target)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(target, dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("baton: connect to %s: %w", target, err)
	}
	return conn, nil
}

// grpcOptions turns the configuration into gRPC dial options.
func (cfg *dialConfig) grpcOptions(target string) ([]grpc.DialOption, error) {
	secure := cfg.mode == transportTLS || (cfg.mode == transportDefault && !IsLoopback(target))
	var opts []grpc.DialOption
	if secure {
		tlsCfg := cfg.tlsConfig
		if tlsCfg == nil {
			tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		if len(cfg.caPEMs) > 0 {
			pool := x509.NewCertPool()
			if tlsCfg.RootCAs != nil {
				pool = tlsCfg.RootCAs.Clone()
			}
			for _, pem := range cfg.caPEMs {
				if !pool.AppendCertsFromPEM(pem) {
					return nil, errors.New("baton: WithCACert: no PEM certificate found")
				}
			}
			tlsCfg.RootCAs = pool
		}
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	} else {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	var unary []grpc.UnaryClientInterceptor
	var stream []grpc.StreamClientInterceptor
	if cfg.creds != nil {
		cfg.creds.requireTLS = secure
		opts = append(opts, grpc.WithPerRPCCredentials(cfg.creds))
		unary = append(unary, cfg.creds.unaryInvalidate)
		stream = append(stream, cfg.creds.streamInvalidate)
	}
	if cfg.idempotency {
		unary = append(unary, IdempotencyKeyInterceptor)
	}
	if cfg.retryInfo > 1 {
		unary = append(unary, RetryInfoInterceptor(cfg.retryInfo, cfg.maxPushback))
	}
	if cfg.retries {
		opts = append(opts, grpc.WithDefaultServiceConfig(RetryServiceConfig(cfg.idempotency)))
	} else {
		opts = append(opts, grpc.WithDisableRetry())
	}
	opts = append(opts,
		grpc.WithKeepaliveParams(cfg.keepalive),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: DefaultConnectBackoff, MinConnectTimeout: 20 * time.Second}),
		grpc.WithUserAgent("baton-go/"+Version),
		grpc.WithChainUnaryInterceptor(unary...),
		grpc.WithChainStreamInterceptor(stream...),
	)
	return append(opts, cfg.dialOptions...), nil
}

// IsLoopback reports whether a gRPC target names this machine: a unix socket, localhost, or a
// loopback IP address (with or without a "dns:///" or "passthrough:///" scheme).
func IsLoopback(target string) bool {
	if strings.HasPrefix(target, "unix:") || strings.HasPrefix(target, "unix-abstract:") {
		return true
	}
	for _, scheme := range []string{"dns:///", "passthrough:///", "dns:", "passthrough:"} {
		if rest, ok := strings.CutPrefix(target, scheme); ok {
			target = rest
			break
		}
	}
	host := target
	if h, _, err := net.SplitHostPort(target); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.IsLoopback()
}

// NewClient wraps an existing connection. (Dial's credentials, retries and idempotency keys
// live in the connection: a connection made with grpc.NewClient has none of them; add
// IdempotencyKeyInterceptor and RetryServiceConfig yourself.)
func NewClient(conn *grpc.ClientConn) *Client {
	return &Client{
		Conn:            conn,
		Agents:          batonv1.NewAgentServiceClient(conn),
		Customers:       batonv1.NewCustomerServiceClient(conn),
		Sessions:        batonv1.NewSessionServiceClient(conn),
		Events:          batonv1.NewEventServiceClient(conn),
		Guidelines:      batonv1.NewGuidelineServiceClient(conn),
		CannedResponses: batonv1.NewCannedResponseServiceClient(conn),
		Tools:           batonv1.NewToolServiceClient(conn),
		Handoffs:        batonv1.NewHandoffServiceClient(conn),
		Auth:            batonv1.NewAuthServiceClient(conn),
	}
}

// Close closes the connection.
func (c *Client) Close() error { return c.Conn.Close() }
