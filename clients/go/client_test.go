package baton

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	batonv1 "github.com/baton-dev/baton/clients/go/gen/baton/v1"
)

// fakeServer is a real gRPC server on 127.0.0.1 whose handlers record what they received and
// answer from a script.
type fakeServer struct {
	batonv1.UnimplementedAgentServiceServer
	batonv1.UnimplementedEventServiceServer

	mu     sync.Mutex
	auth   []string // authorization metadata of each call
	keys   []string // idempotency keys of CreateEvent attempts
	calls  map[string]int
	errors map[string][]error // per method: errors returned by the first calls, in order
}

func (f *fakeServer) record(ctx context.Context, method string) error {
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.auth = append(f.auth, strings.Join(md.Get("authorization"), ","))
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[method]++
	if errs := f.errors[method]; len(errs) > 0 {
		f.errors[method] = errs[1:]
		return errs[0]
	}
	return nil
}

func (f *fakeServer) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

func (f *fakeServer) ListAgents(ctx context.Context, _ *batonv1.ListAgentsRequest) (*batonv1.ListAgentsResponse, error) {
	if err := f.record(ctx, "ListAgents"); err != nil {
		return nil, err
	}
	return &batonv1.ListAgentsResponse{}, nil
}

func (f *fakeServer) UpdateAgent(ctx context.Context, _ *batonv1.UpdateAgentRequest) (*batonv1.UpdateAgentResponse, error) {
	if err := f.record(ctx, "UpdateAgent"); err != nil {
		return nil, err
	}
	return &batonv1.UpdateAgentResponse{}, nil
}

func (f *fakeServer) CreateEvent(ctx context.Context, req *batonv1.CreateEventRequest) (*batonv1.CreateEventResponse, error) {
	f.mu.Lock()
	f.keys = append(f.keys, req.GetIdempotencyKey())
	f.mu.Unlock()
	if err := f.record(ctx, "CreateEvent"); err != nil {
		return nil, err
	}
	return &batonv1.CreateEventResponse{Event: &batonv1.Event{Id: "evt_1"}}, nil
}

// start serves f on 127.0.0.1 (with TLS when creds is not nil) and returns the address.
func start(t *testing.T, f *fakeServer, creds credentials.TransportCredentials) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var opts []grpc.ServerOption
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
	}
	srv := grpc.NewServer(opts...)
	batonv1.RegisterAgentServiceServer(srv, f)
	batonv1.RegisterEventServiceServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func dial(t *testing.T, target string, opts ...Option) *Client {
	t.Helper()
	c, err := Dial(target, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func unavailable() error { return status.Error(codes.Unavailable, "restarting") }

func TestIsLoopback(t *testing.T) {
	for target, want := range map[string]bool{
		"127.0.0.1:8800": true, "127.1.2.3:1": true, "[::1]:8800": true, "localhost:8800": true,
		"dns:///localhost:8800": true, "passthrough:///127.0.0.1:1": true, "unix:///tmp/baton.sock": true,
		"app.localhost:1": true, "10.0.0.1:8800": false, "baton.example.com:443": false,
		"dns:///baton.example.com:443": false, "[2001:db8::1]:8800": false, "0.0.0.0:8800": false,
	} {
		if got := IsLoopback(target); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", target, got, want)
		}
	}
}

func TestTransportChoice(t *testing.T) {
	cases := []struct {
		target     string
		opts       []Option
		requireTLS bool
	}{
		{"127.0.0.1:8800", nil, false},                             // loopback: plaintext by default
		{"baton.example.com:443", nil, true},                       // anything else: TLS by default
		{"baton.example.com:443", []Option{WithInsecure()}, false}, // unless asked explicitly
		{"127.0.0.1:8800", []Option{WithTLS(nil)}, true},
		{"127.0.0.1:8800", []Option{WithCACert(testCA(t).pem)}, true},
	}
	for _, c := range cases {
		cfg := dialConfig{}
		for _, o := range append(c.opts, WithAPIKey("k")) {
			o(&cfg)
		}
		if _, err := cfg.grpcOptions(c.target); err != nil {
			t.Fatal(err)
		}
		if cfg.creds.RequireTransportSecurity() != c.requireTLS {
			t.Errorf("%s %d options: RequireTransportSecurity = %v, want %v", c.target, len(c.opts),
				!c.requireTLS, c.requireTLS)
		}
	}
}

func TestDialRejectsBadOptions(t *testing.T) {
	for name, opt := range map[string]Option{
		"empty key": WithAPIKey(""), "nil source": WithTokenSource(nil), "bad PEM": WithCACert([]byte("nope")),
	} {
		if _, err := Dial("127.0.0.1:1", opt); err == nil {
			t.Errorf("%s: Dial succeeded", name)
		}
	}
}

// Per-call credentials must reach the server over plaintext loopback, together with any
// passthrough gRPC option (the old Dial lost its plaintext default as soon as one was given).
func TestAPIKeyOverLoopbackWithPassthroughOptions(t *testing.T) {
	f := &fakeServer{}
	addr := start(t, f, nil)
	var intercepted atomic.Int32
	c := dial(t, addr, WithAPIKey("bk_key_1"), WithGRPCOptions(grpc.WithChainUnaryInterceptor(
		func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
			invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			intercepted.Add(1)
			return invoker(ctx, method, req, reply, cc, opts...)
		})))
	if _, err := c.Agents.ListAgents(ctx(t), &batonv1.ListAgentsRequest{}); err != nil {
		t.Fatal(err)
	}
	if f.auth[0] != "Bearer bk_key_1" || intercepted.Load() != 1 {
		t.Fatalf("authorization %q, interceptor ran %d times", f.auth[0], intercepted.Load())
	}
}

type countingSource struct{ n atomic.Int32 }

func (s *countingSource) Token(context.Context) (Token, error) {
	n := s.n.Add(1)
	return Token{Value: "tok" + string(rune('0'+n)), Expiry: time.Now().Add(time.Hour)}, nil
}

func TestTokenSourceCachedAndInvalidatedOnUnauthenticated(t *testing.T) {
	f := &fakeServer{errors: map[string][]error{"UpdateAgent": {status.Error(codes.Unauthenticated, "expired")}}}
	addr := start(t, f, nil)
	src := &countingSource{}
	tokens := ReuseTokenSource(src, time.Minute)
	c := dial(t, addr, WithTokenSource(tokens))
	for range 2 {
		if _, err := c.Agents.ListAgents(ctx(t), &batonv1.ListAgentsRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Agents.UpdateAgent(ctx(t), &batonv1.UpdateAgentRequest{}); !IsUnauthenticated(err) {
		t.Fatalf("UpdateAgent: %v", err)
	}
	if _, err := c.Agents.ListAgents(ctx(t), &batonv1.ListAgentsRequest{}); err != nil {
		t.Fatal(err)
	}
	want := []string{"Bearer tok1", "Bearer tok1", "Bearer tok1", "Bearer tok2"}
	if strings.Join(f.auth, " ") != strings.Join(want, " ") || tokens.Fetches() != 2 {
		t.Fatalf("authorization %v (fetches %d), want %v", f.auth, tokens.Fetches(), want)
	}
}

func TestReuseTokenSourceRefreshesBeforeExpiry(t *testing.T) {
	now := time.Unix(1000, 0)
	n := 0
	src := ReuseTokenSource(tokenSourceFunc(func(context.Context) (Token, error) {
		n++
		return Token{Value: "t", Expiry: now.Add(10 * time.Second)}, nil
	}), 3*time.Second)
	src.now = func() time.Time { return now }
	_, _ = src.Token(context.Background())
	now = now.Add(6 * time.Second) // 4 s left > 3 s leeway: cached
	_, _ = src.Token(context.Background())
	now = now.Add(2 * time.Second) // 2 s left: refreshed
	_, _ = src.Token(context.Background())
	if n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
}

func TestTokenSourceErrors(t *testing.T) {
	b := &bearerCredentials{source: TokenFunc(func(context.Context) (string, error) { return "", errors.New("boom") })}
	if _, err := b.GetRequestMetadata(context.Background()); status.Code(err) != codes.Unauthenticated {
		t.Errorf("plain error: %v, want UNAUTHENTICATED", err)
	}
	b.source = TokenFunc(func(context.Context) (string, error) { return "", unavailable() })
	if _, err := b.GetRequestMetadata(context.Background()); status.Code(err) != codes.Unavailable {
		t.Errorf("status error: %v, want it kept (UNAVAILABLE)", err)
	}
}

type ca struct {
	pem    []byte
	server tls.Certificate
}

var (
	testCAOnce sync.Once
	testCAVal  ca
)

// testCA makes a CA and a certificate for localhost / 127.0.0.1 signed by it.
func testCA(t *testing.T) ca {
	testCAOnce.Do(func() {
		caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
			KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
		caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
		if err != nil {
			panic(err)
		}
		caCert, _ := x509.ParseCertificate(caDER)
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			panic(err)
		}
		testCAVal = ca{
			pem:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
			server: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		}
	})
	return testCAVal
}

func TestTLSWithCustomCA(t *testing.T) {
	ca := testCA(t)
	f := &fakeServer{}
	addr := start(t, f, credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{ca.server}}))
	c := dial(t, addr, WithCACert(ca.pem), WithAPIKey("k"))
	if _, err := c.Agents.ListAgents(ctx(t), &batonv1.ListAgentsRequest{}); err != nil {
		t.Fatal(err)
	}
	if f.auth[0] != "Bearer k" {
		t.Fatalf("authorization %q", f.auth[0])
	}
	// Without the CA the server's certificate is not trusted.
	untrusting := dial(t, addr, WithTLS(&tls.Config{RootCAs: x509.NewCertPool()}), WithoutRetries())
	if _, err := untrusting.Agents.ListAgents(ctx(t), &batonv1.ListAgentsRequest{}); !IsUnavailable(err) {
		t.Fatalf("without the CA: %v, want UNAVAILABLE", err)
	}
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNewIdempotencyKey(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		k := NewIdempotencyKey()
		if !uuidV4.MatchString(k) || seen[k] {
			t.Fatalf("key %q: not a fresh v4 UUID", k)
		}
		seen[k] = true
	}
}

// CreateEvent is retried on UNAVAILABLE with one generated key across the attempts; a key the
// caller gives is kept; unsafe calls are not retried.
func TestRetriesAndIdempotencyKey(t *testing.T) {
	f := &fakeServer{errors: map[string][]error{
		"CreateEvent": {unavailable(), unavailable()},
		"ListAgents":  {unavailable()},
		"UpdateAgent": {unavailable()},
	}}
	c := dial(t, start(t, f, nil))
	req := &batonv1.CreateEventRequest{SessionId: "ses_1"}
	if _, err := c.Events.CreateEvent(ctx(t), req); err != nil {
		t.Fatal(err)
	}
	if len(f.keys) != 3 || f.keys[0] != f.keys[1] || f.keys[1] != f.keys[2] || !uuidV4.MatchString(f.keys[0]) {
		t.Fatalf("keys of the attempts %v, want one UUID three times", f.keys)
	}
	if req.GetIdempotencyKey() != "" {
		t.Errorf("the caller's request was given key %q, want it unchanged", req.GetIdempotencyKey())
	}
	if _, err := c.Events.CreateEvent(ctx(t), &batonv1.CreateEventRequest{IdempotencyKey: "mine"}); err != nil || f.keys[3] != "mine" {
		t.Errorf("caller's key: sent %q (%v)", f.keys[3], err)
	}
	if _, err := c.Agents.ListAgents(ctx(t), &batonv1.ListAgentsRequest{}); err != nil || f.count("ListAgents") != 2 {
		t.Errorf("ListAgents: %v after %d calls, want success after 2", err, f.count("ListAgents"))
	}
	if _, err := c.Agents.UpdateAgent(ctx(t), &batonv1.UpdateAgentRequest{}); !IsUnavailable(err) || f.count("UpdateAgent") != 1 {
		t.Errorf("UpdateAgent: %v after %d calls, want UNAVAILABLE after 1", err, f.count("UpdateAgent"))
	}
}

// One request value sent twice is two calls, two events: each call gets its own key (kept
// across a RetryInfo repeat of the first call), and the caller's message is left as it was.
func TestIdempotencyKeyLeavesRequestUnchanged(t *testing.T) {
	f := &fakeServer{errors: map[string][]error{
		"CreateEvent": {withRetryInfo(codes.ResourceExhausted, 10*time.Millisecond)}}}
	c := dial(t, start(t, f, nil))
	req := &batonv1.CreateEventRequest{SessionId: "ses_1",
		Data: &batonv1.CreateEventRequest_Message{Message: &batonv1.MessageData{Text: "hello"}}}
	before := proto.Clone(req)
	for range 2 {
		if _, err := c.Events.CreateEvent(ctx(t), req); err != nil {
			t.Fatal(err)
		}
	}
	if !proto.Equal(req, before) {
		t.Errorf("the caller's request changed: %v, was %v", req, before)
	}
	if len(f.keys) != 3 || !uuidV4.MatchString(f.keys[0]) || !uuidV4.MatchString(f.keys[2]) ||
		f.keys[0] != f.keys[1] || f.keys[1] == f.keys[2] {
		t.Fatalf("keys of the attempts %v, want [A A B]: one UUID per call", f.keys)
	}
}

func TestWithoutIdempotencyKeysDoesNotRetryCreateEvent(t *testing.T) {
	f := &fakeServer{errors: map[string][]error{"CreateEvent": {unavailable()}}}
	c := dial(t, start(t, f, nil), WithoutIdempotencyKeys())
	if _, err := c.Events.CreateEvent(ctx(t), &batonv1.CreateEventRequest{}); !IsUnavailable(err) || len(f.keys) != 1 || f.keys[0] != "" {
		t.Fatalf("%v, keys %q", err, f.keys)
	}
}

func withRetryInfo(code codes.Code, delay time.Duration) error {
	st, err := status.New(code, "slow down").WithDetails(
		&errdetails.ErrorInfo{Reason: "TOO_MANY_FAILED_AUTHENTICATIONS", Domain: "baton.v1"},
		&errdetails.RetryInfo{RetryDelay: durationpb.New(delay)})
	if err != nil {
		panic(err)
	}
	return st.Err()
}

func TestRetryInfoHonoured(t *testing.T) {
	f := &fakeServer{errors: map[string][]error{
		"UpdateAgent": {withRetryInfo(codes.ResourceExhausted, 50*time.Millisecond)},
		"ListAgents":  {withRetryInfo(codes.ResourceExhausted, time.Hour)},
	}}
	c := dial(t, start(t, f, nil))
	started := time.Now()
	if _, err := c.Agents.UpdateAgent(ctx(t), &batonv1.UpdateAgentRequest{}); err != nil || f.count("UpdateAgent") != 2 {
		t.Fatalf("UpdateAgent: %v after %d calls, want success after 2", err, f.count("UpdateAgent"))
	}
	if waited := time.Since(started); waited < 50*time.Millisecond {
		t.Errorf("retried after %s, before the RetryInfo delay", waited)
	}
	_, err := c.Agents.ListAgents(ctx(t), &batonv1.ListAgentsRequest{})
	if d, ok := RetryDelay(err); !IsResourceExhausted(err) || !ok || d != time.Hour || f.count("ListAgents") != 1 {
		t.Fatalf("a delay past the maximum is returned at once: %v (%s) after %d calls", err, d, f.count("ListAgents"))
	}
}

func TestBackoff(t *testing.T) {
	for attempt, ceiling := range map[int]time.Duration{
		0: 100 * time.Millisecond, 1: 100 * time.Millisecond, 2: 200 * time.Millisecond,
		3: 400 * time.Millisecond, 5: time.Second, 80: time.Second,
	} {
		lo, hi := time.Hour, time.Duration(0)
		for range 500 {
			d := Backoff(100*time.Millisecond, time.Second, attempt)
			lo, hi = min(lo, d), max(hi, d)
		}
		if lo < ceiling/2 || hi > ceiling || hi-lo < ceiling/4 {
			t.Errorf("attempt %d: delays in [%s, %s], want spread over [%s, %s]", attempt, lo, hi, ceiling/2, ceiling)
		}
	}
	if d := Backoff(0, 0, 3); d != 0 {
		t.Errorf("zero durations: %s", d)
	}
}
