package baton

import (
	"context"
	"errors"
	"io"
	"iter"
	"slices"
	"time"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	batonv1 "github.com/baton-dev/baton/clients/go/gen/baton/v1"
)

// WatchOption configures WatchHandoffs. The FollowOptions WithBackoff, WithMaxRetries,
// WithRetryableCodes and WithOnReconnect apply to it too.
type WatchOption = FollowOption

// WithOnInboxMarker calls f with each WatchHandoffs stream item that carries caught_up or a
// heartbeat, which WatchHandoffs does not yield.
func WithOnInboxMarker(f func(*batonv1.WatchHandoffsResponse)) WatchOption {
	return func(c *followConfig) { c.onInboxMarker = f }
}

// WatchHandoffs streams the operator inbox (HandoffService.WatchHandoffs) until ctx ends or the
// caller stops ranging: without req.AfterPosition, first the open handoffs (type OPEN, all
// carrying the snapshot's position), then every change live; with it, every change after that
// position.
//
// It reconnects on UNAVAILABLE and when the stream ends (a server shutting down ends it), with
// jittered exponential backoff (200 ms doubling up to 10 s, see WithBackoff), resuming with
// after_position = the last position it delivered or that a caught_up or heartbeat reported,
// and drops anything at or below it: each change is yielded exactly once, positions strictly
// increasing (OPEN snapshot entries share one position). The snapshot is held back until its
// caught_up arrives (the server may split it across several messages) and then yielded whole:
// if a stream breaks in the middle of the snapshot, nothing of it was yielded and the next
// stream starts a new snapshot (possibly at a newer position, with other open handoffs).
//
// Errors are yielded with a nil change, after which the sequence ends: ctx.Err(), or a status
// error that is not retryable (PERMISSION_DENIED, INVALID_ARGUMENT for an after_position past
// the newest change, ...). req is not modified.
//
//	for ch, err := range baton.WatchHandoffs(ctx, c.Handoffs, &batonv1.WatchHandoffsRequest{
//		Operator: &batonv1.Participant{Id: "olga", DisplayName: "Olga"}}) {
//		if err != nil { return err }
//		fmt.Println(ch.GetPosition(), ch.GetType(), ch.GetHandoff().GetSessionId())
//	}
func WatchHandoffs(ctx context.Context, client batonv1.HandoffServiceClient,
	req *batonv1.WatchHandoffsRequest, opts ...WatchOption) iter.Seq2[*batonv1.HandoffChange, error] {
	cfg := defaultFollowConfig()
	for _, opt := range opts {
		opt(&cfg)
	}
	return func(yield func(*batonv1.HandoffChange, error) bool) {
		w := inboxCursor{known: req.AfterPosition != nil}
		if w.known {
			w.last = req.GetAfterPosition()
		}
		failures := 0
		for {
			stop, err := w.watchOnce(ctx, client, req, &failures, &cfg, yield)
			if stop {
				return
			}
			if ctx.Err() != nil {
				yield(nil, ctx.Err())
				return
			}
			if err == nil {
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
				after := int64(-1)
				if w.known {
					after = w.last
				}
				cfg.onReconnect(ReconnectInfo{Err: err, Attempt: failures, Delay: delay, AfterPosition: after})
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

// inboxCursor is what WatchHandoffs knows across streams.
type inboxCursor struct {
	known bool  // last is a position the server sent (or the caller gave)
	last  int64 // every change up to it has been delivered
}

// accept decides whether to deliver ch (not a held-back snapshot entry), and advances the
// cursor.
func (w *inboxCursor) accept(ch *batonv1.HandoffChange) bool {
	if w.known && ch.GetPosition() <= w.last {
		return false
	}
	w.known, w.last = true, ch.GetPosition()
	return true
}

// reached records that every change up to position has been sent (caught_up, heartbeat).
func (w *inboxCursor) reached(position int64) {
	if !w.known || position > w.last {
		w.known, w.last = true, position
	}
}

// isSnapshotEntry reports whether ch belongs to the snapshot a stream without after_position
// starts with, which WatchHandoffs holds back until caught_up.
func (w *inboxCursor) isSnapshotEntry(ch *batonv1.HandoffChange) bool {
	return !w.known && ch.GetType() == batonv1.HandoffChangeType_HANDOFF_CHANGE_TYPE_OPEN
}

func (w *inboxCursor) watchOnce(ctx context.Context, client batonv1.HandoffServiceClient,
	req *batonv1.WatchHandoffsRequest, failures *int, cfg *followConfig,
	yield func(*batonv1.HandoffChange, error) bool) (stop bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := proto.CloneOf(req)
	if w.known {
		r.AfterPosition = proto.Int64(w.last)
	} else {
		r.AfterPosition = nil
	}
	stream, err := client.WatchHandoffs(ctx, r)
	if err != nil {
		return false, err
	}
	// This stream's snapshot entries not yet yielded: dropped if the stream breaks before
	// caught_up (the next stream starts a new snapshot).
	var snapshot []*batonv1.HandoffChange
	flush := func() bool {
		entries := snapshot
		snapshot = nil
		for _, ch := range entries {
			w.reached(ch.GetPosition()) // entries share the snapshot's position
			if !yield(ch, nil) {
				return false
			}
		}
		return true
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
		for _, ch := range resp.GetChanges() {
			if w.isSnapshotEntry(ch) {
				snapshot = append(snapshot, ch)
				continue
			}
			// caught_up ends the snapshot; a change of another kind before it (not expected)
			// is newer than the snapshot, which goes first.
			if !flush() || (w.accept(ch) && !yield(ch, nil)) {
				return true, nil
			}
		}
		if resp.GetCaughtUp() {
			if !flush() {
				return true, nil
			}
			w.reached(resp.GetCaughtUpPosition())
		}
		if hb := resp.GetHeartbeat(); hb != nil && len(snapshot) == 0 {
			w.reached(hb.GetPosition()) // (not while a snapshot is held back: it is owed)
		}
		if cfg.onInboxMarker != nil && (resp.GetCaughtUp() || resp.GetHeartbeat() != nil) {
			cfg.onInboxMarker(resp)
		}
	}
}

// Follow is baton.Follow on c.Events.
func (c *Client) Follow(ctx context.Context, sessionID string, fromOffset int64,
	opts ...FollowOption) iter.Seq2[*batonv1.Event, error] {
	return Follow(ctx, c.Events, sessionID, fromOffset, opts...)
}

// WatchHandoffs is baton.WatchHandoffs on c.Handoffs.
func (c *Client) WatchHandoffs(ctx context.Context, req *batonv1.WatchHandoffsRequest,
	opts ...WatchOption) iter.Seq2[*batonv1.HandoffChange, error] {
	return WatchHandoffs(ctx, c.Handoffs, req, opts...)
}

// The HandoffService calls an operator console makes most, without building requests. Each
// returns the handoff after the call; the full requests (expected_epoch, on_behalf_of_ai, ...)
// are on c.Handoffs.

// ClaimHandoff takes a PENDING handoff as operator (FAILED_PRECONDITION naming the holder
// when someone else won).
func (c *Client) ClaimHandoff(ctx context.Context, handoffID string, operator *batonv1.Participant) (*batonv1.Handoff, error) {
	resp, err := c.Handoffs.ClaimHandoff(ctx, &batonv1.ClaimHandoffRequest{HandoffId: handoffID, Operator: operator})
	return resp.GetHandoff(), err
}

// ReleaseHandoff ends a handoff the operator holds (operatorID may be empty for a PENDING
// one) with outcome and an optional note.
func (c *Client) ReleaseHandoff(ctx context.Context, handoffID, operatorID string,
	outcome batonv1.HandoffOutcome, note string) (*batonv1.Handoff, error) {
	resp, err := c.Handoffs.ReleaseHandoff(ctx, &batonv1.ReleaseHandoffRequest{
		HandoffId: handoffID, OperatorId: operatorID, Outcome: outcome, Note: note})
	return resp.GetHandoff(), err
}

// RequestHandoff opens a handoff for a session (requested by an external system). The
// response also says whether an operator is available.
func (c *Client) RequestHandoff(ctx context.Context, sessionID, reason string) (*batonv1.RequestHandoffResponse, error) {
	return c.Handoffs.RequestHandoff(ctx, &batonv1.RequestHandoffRequest{SessionId: sessionID, Reason: reason})
}

// TransferHandoff moves a CLAIMED handoff from one operator to another.
func (c *Client) TransferHandoff(ctx context.Context, handoffID, fromOperatorID string,
	to *batonv1.Participant) (*batonv1.Handoff, error) {
	resp, err := c.Handoffs.TransferHandoff(ctx, &batonv1.TransferHandoffRequest{
		HandoffId: handoffID, FromOperatorId: fromOperatorID, ToOperator: to})
	return resp.GetHandoff(), err
}

// OfferHandoff reserves a PENDING handoff for one operator.
func (c *Client) OfferHandoff(ctx context.Context, handoffID string, operator *batonv1.Participant) (*batonv1.Handoff, error) {
	resp, err := c.Handoffs.OfferHandoff(ctx, &batonv1.OfferHandoffRequest{HandoffId: handoffID, Operator: operator})
	return resp.GetHandoff(), err
}

// RespondToOffer accepts (claims) or declines a handoff offered to operator.
func (c *Client) RespondToOffer(ctx context.Context, handoffID string, operator *batonv1.Participant,
	accept bool) (*batonv1.Handoff, error) {
	resp, err := c.Handoffs.RespondToOffer(ctx, &batonv1.RespondToOfferRequest{
		HandoffId: handoffID, Operator: operator, Accept: accept})
	return resp.GetHandoff(), err
}

// GetHandoff returns one handoff.
func (c *Client) GetHandoff(ctx context.Context, handoffID string) (*batonv1.Handoff, error) {
	resp, err := c.Handoffs.GetHandoff(ctx, &batonv1.GetHandoffRequest{HandoffId: handoffID})
	return resp.GetHandoff(), err
}

// ListHandoffs iterates over the handoffs matching req (all pages, oldest request first);
// req.PageToken is the starting page. An error is yielded once, with a nil handoff, and ends
// the sequence.
func (c *Client) ListHandoffs(ctx context.Context, req *batonv1.ListHandoffsRequest) iter.Seq2[*batonv1.Handoff, error] {
	return func(yield func(*batonv1.Handoff, error) bool) {
		r := proto.CloneOf(req)
		if r == nil {
			r = &batonv1.ListHandoffsRequest{}
		}
		for {
			resp, err := c.Handoffs.ListHandoffs(ctx, r)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, h := range resp.GetHandoffs() {
				if !yield(h, nil) {
					return
				}
			}
			if resp.GetNextPageToken() == "" {
				return
			}
			r.PageToken = resp.GetNextPageToken()
		}
	}
}
