package baton

import (
	"context"
	"errors"
	"io"
	"iter"
	"math/rand/v2"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	batonv1 "github.com/baton-dev/baton/clients/go/gen/baton/v1"
)

// FollowOption configures Follow.
type FollowOption func(*followConfig)

type followConfig struct {
	kinds          []batonv1.EventKind
	sources        []batonv1.EventSource
	initialBackoff time.Duration
	maxBackoff     time.Duration
	maxRetries     int // < 0: forever
	retryable      []codes.Code
	onReconnect    func(ReconnectInfo)
	onMarker       func(*batonv1.ListEventsResponse)
	onInboxMarker  func(*batonv1.WatchHandoffsResponse)
}

func defaultFollowConfig() followConfig {
	return followConfig{
		initialBackoff: 200 * time.Millisecond,
		maxBackoff:     10 * time.Second,
		maxRetries:     -1,
		retryable:      []codes.Code{codes.Unavailable},
	}
}

// ReconnectInfo is what WithOnReconnect's callback is told before each reconnect.
type ReconnectInfo struct {
	Err        error         // why the stream ended (io.ErrUnexpectedEOF if it ended cleanly)
	Attempt    int           // 1 for the first reconnect after a healthy stream, 2 next in a row...
	Delay      time.Duration // how long Follow waits before reconnecting
	NextOffset int64         // Follow: the offset the new stream starts from
	// WatchHandoffs: the after_position the new stream resumes from (-1: none yet, the new
	// stream starts with a snapshot of the open handoffs).
	AfterPosition int64
}

// WithKinds delivers only events of these kinds.
func WithKinds(kinds ...batonv1.EventKind) FollowOption {
	return func(c *followConfig) { c.kinds = kinds }
}

// WithSources delivers only events from these sources.
func WithSources(sources ...batonv1.EventSource) FollowOption {
	return func(c *followConfig) { c.sources = sources }
}

// WithBackoff sets the first reconnect delay (before jitter; default 200ms) and its upper
// bound (default 10s). The delay doubles with each reconnect in a row.
func WithBackoff(initial, max time.Duration) FollowOption {
	return func(c *followConfig) { c.initialBackoff, c.maxBackoff = initial, max }
}

// WithMaxRetries gives up, yielding the last error, after n reconnects in a row without
// receiving anything. Default: retry forever.
func WithMaxRetries(n int) FollowOption {
	return func(c *followConfig) { c.maxRetries = n }
}

// WithRetryableCodes sets the status codes that trigger a reconnect (default: Unavailable).
// An unexpected end of the stream always triggers one.
func WithRetryableCodes(retryable ...codes.Code) FollowOption {
	return func(c *followConfig) { c.retryable = retryable }
}

// Backoff is the delay before reconnect number attempt (1, 2, ...) in a row of Follow and
// WatchHandoffs: "equal jitter" exponential backoff, uniformly random between half and all of
// min(limit, initial * 2^(attempt-1)).
func Backoff(initial, limit time.Duration, attempt int) time.Duration {
	ceiling := min(limit, initial<<min(max(attempt, 1)-1, 30))
	if ceiling <= 0 { // overflow
		ceiling = limit
	}
	if ceiling <= 0 {
		return 0
	}
	return ceiling/2 + rand.N(ceiling/2+1)
}

// WithOnReconnect calls f before each reconnect, e.g. for logging.
func WithOnReconnect(f func(ReconnectInfo)) FollowOption {
	return func(c *followConfig) { c.onReconnect = f }
}

// WithOnMarker calls f with each stream item that carries a marker (caught_up, fell_behind
// or heartbeat), which Follow does not yield. Its events, if any, are yielded as usual.
func WithOnMarker(f func(*batonv1.ListEventsResponse)) FollowOption {
	return func(c *followConfig) { c.onMarker = f }
}

// Follow streams the session's events from fromOffset on, then live, until ctx ends or the
// caller stops ranging. It reconnects on Unavailable and when the stream ends unexpectedly,
// with jittered exponential backoff, resuming after the last delivered event: every matching
// event is yielded exactly once, in offset order.
//
// Errors are yielded with a nil event, after which the sequence ends: ctx.Err() when the
// context ends, otherwise the status error of a non-retryable failure (NotFound when the
// session does not exist or is deleted, InvalidArgument, ...).
//
//	for ev, err := range baton.Follow(ctx, c.Events, sessionID, 0) {
//		if err != nil { return err }
//		fmt.Println(ev.GetOffset(), ev.GetKind())
//	}
func Follow(ctx context.Context, client batonv1.EventServiceClient, sessionID string,
	fromOffset int64, opts ...FollowOption) iter.Seq2[*batonv1.Event, error] {
	cfg := defaultFollowConfig()
	for _, opt := range opts {
		opt(&cfg)
	}
	return func(yield func(*batonv1.Event, error) bool) {
		next := fromOffset
		failures := 0 // reconnects in a row without receiving anything
		for {
			stop, err := followOnce(ctx, client, sessionID, &next, &failures, &cfg, yield)
			if stop {
				return
			}
			if ctx.Err() != nil {
				yield(nil, ctx.Err())
				return
			}
			if err == nil { // a follow stream ends only on error: unexpected
				err = io.ErrUnexpectedEOF
			} else if !slices.Contains(cfg.retryable, status.Code(err)) {
				yield(nil, err)
				return
			}
			failures++
			if cfg.maxRetries >= 0 && failures > cfg.maxRetries {
				yield(nil, err)
				return
			}
			delay := Backoff(cfg.initialBackoff, cfg.maxBackoff, failures)
			if cfg.onReconnect != nil {
				cfg.onReconnect(ReconnectInfo{Err: err, Attempt: failures, Delay: delay, NextOffset: next})
			}
			timer := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				timer.Stop()
				yield(nil, ctx.Err())
				return
			case <-timer.C:
			}
		}
	}
}

// followOnce runs one ListEvents stream from *next. It returns the error that ended the stream
// (nil if it ended cleanly), or stop=true when the caller stopped ranging.
func followOnce(ctx context.Context, client batonv1.EventServiceClient, sessionID string,
	next *int64, failures *int, cfg *followConfig,
	yield func(*batonv1.Event, error) bool) (stop bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the call when we return, whatever the reason
	stream, err := client.ListEvents(ctx, &batonv1.ListEventsRequest{
		SessionId: sessionID,
		MinOffset: *next,
		Kinds:     cfg.kinds,
		Sources:   cfg.sources,
		Follow:    true,
	})
	if err != nil {
		return false, err
	}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		*failures = 0
		for _, ev := range resp.GetEvents() {
			if ev.GetOffset() < *next {
				continue // already delivered (e.g. replayed after a resume)
			}
			*next = ev.GetOffset() + 1
			if !yield(ev, nil) {
				return true, nil
			}
		}
		if hb := resp.GetHeartbeat(); hb != nil && hb.GetNextOffset() > *next {
			*next = hb.GetNextOffset() // offsets below are delivered or filtered out
		}
		if cfg.onMarker != nil && (resp.GetCaughtUp() || resp.GetFellBehind() || resp.GetHeartbeat() != nil) {
			cfg.onMarker(resp)
		}
	}
}
