package baton

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	batonv1 "github.com/baton-dev/baton/clients/go/gen/baton/v1"
)

// Token is a credential and when it stops being accepted (zero: never).
type Token struct {
	Value  string
	Expiry time.Time
}

// TokenSource supplies the credential of a call, like golang.org/x/oauth2's TokenSource but
// with the call's context. Sources that cache may also implement Invalidate(), which the
// client calls when the server answers UNAUTHENTICATED.
type TokenSource interface {
	Token(ctx context.Context) (Token, error)
}

// TokenFunc adapts a function returning a bare token (no expiry) to a TokenSource. It is called
// for every call; wrap it in ReuseTokenSource to cache.
type TokenFunc func(ctx context.Context) (string, error)

// Token calls f.
func (f TokenFunc) Token(ctx context.Context) (Token, error) {
	v, err := f(ctx)
	return Token{Value: v}, err
}

// WithTokenFunc is WithTokenSource(TokenFunc(f)): f is called before every call.
func WithTokenFunc(f func(ctx context.Context) (string, error)) Option {
	return WithTokenSource(TokenFunc(f))
}

// StaticToken is a TokenSource that always returns the same credential.
type StaticToken string

// Token returns t.
func (t StaticToken) Token(context.Context) (Token, error) { return Token{Value: string(t)}, nil }

// ReuseTokenSource caches src's token and asks src again only when less than leeway is left
// before its Expiry (a token without Expiry is kept until invalidated), or after the server
// refused it (UNAUTHENTICATED). Concurrent calls share one fetch.
func ReuseTokenSource(src TokenSource, leeway time.Duration) *CachingTokenSource {
	return &CachingTokenSource{src: src, leeway: leeway, now: time.Now}
}

// CachingTokenSource is the TokenSource ReuseTokenSource returns.
type CachingTokenSource struct {
	src    TokenSource
	leeway time.Duration
	now    func() time.Time

	mu      sync.Mutex
	cached  Token
	valid   bool
	fetches int
}

// Token returns the cached token or fetches a new one.
func (s *CachingTokenSource) Token(ctx context.Context) (Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.valid && (s.cached.Expiry.IsZero() || s.now().Add(s.leeway).Before(s.cached.Expiry)) {
		return s.cached, nil
	}
	t, err := s.src.Token(ctx)
	if err != nil {
		return Token{}, err
	}
	s.cached, s.valid = t, true
	s.fetches++
	return t, nil
}

// Invalidate drops the cached token: the next call fetches one.
func (s *CachingTokenSource) Invalidate() {
	s.mu.Lock()
	s.valid = false
	s.mu.Unlock()
}

// Cached returns the cached token, if any.
func (s *CachingTokenSource) Cached() (Token, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cached, s.valid
}

// Fetches reports how many tokens were fetched from the wrapped source.
func (s *CachingTokenSource) Fetches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches
}

// CustomerTokenSource issues tokens for one customer through an integration client's
// AuthService.IssueCustomerToken (ttl 0: the server's default, 15 minutes), cached until a
// minute before they expire (or ttl/4 for short ones). It is what a widget backend uses to
// act as the customer:
//
//	tokens := baton.CustomerTokenSource(integration.Auth, customerID, 0)
//	customer, err := baton.Dial(addr, baton.WithTokenSource(tokens))
func CustomerTokenSource(auth batonv1.AuthServiceClient, customerID string, ttl time.Duration) *CachingTokenSource {
	leeway := time.Minute
	if ttl > 0 {
		leeway = min(leeway, ttl/4)
	}
	return ReuseTokenSource(IssuedTokenSource(auth, customerID, ttl), leeway)
}

// IssuedTokenSource is the uncached source under CustomerTokenSource: every Token call issues
// a new customer token.
func IssuedTokenSource(auth batonv1.AuthServiceClient, customerID string, ttl time.Duration) TokenSource {
	return tokenSourceFunc(func(ctx context.Context) (Token, error) {
		req := &batonv1.IssueCustomerTokenRequest{CustomerId: customerID}
		if ttl > 0 {
			req.Ttl = durationpb.New(ttl)
		}
		resp, err := auth.IssueCustomerToken(ctx, req)
		if err != nil {
			return Token{}, err
		}
		return Token{Value: resp.GetToken(), Expiry: resp.GetExpireTime().AsTime()}, nil
	})
}

type tokenSourceFunc func(ctx context.Context) (Token, error)

func (f tokenSourceFunc) Token(ctx context.Context) (Token, error) { return f(ctx) }

// bearerCredentials implements credentials.PerRPCCredentials over a TokenSource.
type bearerCredentials struct {
	source     TokenSource
	requireTLS bool // false only when Dial chose plaintext (loopback default or WithInsecure)
}

func (b *bearerCredentials) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	t, err := b.source.Token(ctx)
	if err != nil {
		if _, ok := status.FromError(err); ok {
			return nil, err // e.g. UNAVAILABLE while the server restarts: the call is retried
		}
		return nil, status.Errorf(codes.Unauthenticated, "baton: token source: %v", err)
	}
	if t.Value == "" {
		return nil, status.Error(codes.Unauthenticated, "baton: token source returned an empty token")
	}
	return map[string]string{"authorization": "Bearer " + t.Value}, nil
}

// RequireTransportSecurity is false only on a connection Dial made plaintext on purpose
// (a loopback target without TLS options, or WithInsecure): gRPC then sends the credentials,
// which it otherwise refuses to do without TLS.
func (b *bearerCredentials) RequireTransportSecurity() bool { return b.requireTLS }

func (b *bearerCredentials) invalidate(err error) {
	if status.Code(err) != codes.Unauthenticated {
		return
	}
	if inv, ok := b.source.(interface{ Invalidate() }); ok {
		inv.Invalidate()
	}
}

func (b *bearerCredentials) unaryInvalidate(ctx context.Context, method string, req, reply any,
	cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	b.invalidate(err)
	return err
}

func (b *bearerCredentials) streamInvalidate(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn,
	method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		b.invalidate(err)
		return nil, err
	}
	return &invalidatingStream{ClientStream: s, creds: b}, nil
}

type invalidatingStream struct {
	grpc.ClientStream
	creds *bearerCredentials
}

func (s *invalidatingStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err != nil && !errors.Is(err, io.EOF) {
		s.creds.invalidate(err)
	}
	return err
}
