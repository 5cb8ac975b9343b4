package baton

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	batonv1 "github.com/baton-dev/baton/clients/go/gen/baton/v1"
)

// workerStream is one ServeTools stream: a receive loop in run, one goroutine per call, a
// heartbeat/watchdog goroutine; sends are serialised by sendMu (gRPC allows one sender).
type workerStream struct {
	w        *ToolWorker
	target   string
	stream   grpc.BidiStreamingClient[batonv1.ServeToolsRequest, batonv1.ServeToolsResponse]
	workerID string

	sendMu sync.Mutex
	closed bool // CloseSend done

	mu       sync.Mutex
	calls    map[string]*runningCall
	inflight sync.WaitGroup
	heard    time.Time // last message from the server
}

type runningCall struct {
	cancel    context.CancelCauseFunc
	cancelled bool // the server cancelled it: its result is not sent
}

// ErrCallCancelled is the cause (context.Cause) of a handler's ctx when the server cancelled
// the call: its deadline passed or its turn ended. The result is then not sent.
var ErrCallCancelled = errors.New("baton: the server cancelled the call")

var errStopping = errors.New("baton: tool worker stopping")

// acceptTimeout bounds the wait for the server's answer to a declaration.
const acceptTimeout = 30 * time.Second

func (s *workerStream) send(m *batonv1.ServeToolsRequest) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	if s.closed {
		return errors.New("stream half-closed")
	}
	return s.stream.Send(m)
}

func (s *workerStream) closeSend() {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	if !s.closed {
		s.closed = true
		_ = s.stream.CloseSend()
	}
}

// run opens the stream, declares, serves calls until the stream ends or Stop drains it.
// accepted reports whether the server accepted the declaration.
func (s *workerStream) run(client batonv1.ToolWorkerServiceClient) (accepted bool, err error) {
	// Not derived from Run's ctx: the stream must outlive it to drain.
	streamCtx, cancelStream := context.WithCancelCause(context.Background())
	defer cancelStream(nil)
	// Handlers get their own context, cancelled after the drain grace or when the stream breaks.
	handlerCtx, cancelHandlers := context.WithCancelCause(streamCtx)
	defer cancelHandlers(nil)

	// Until the server accepts, Stop just abandons the stream (there is nothing to drain), and
	// a server that does not answer the declaration is given up on after acceptTimeout.
	acceptedCh := make(chan struct{})
	acceptDone := sync.OnceFunc(func() { close(acceptedCh) })
	defer acceptDone()
	go func() {
		timer := time.NewTimer(acceptTimeout)
		defer timer.Stop()
		select {
		case <-s.w.stop:
			cancelStream(errStopping)
		case <-timer.C:
			cancelStream(status.Errorf(codes.Unavailable, "no answer to the declaration within %v", acceptTimeout))
		case <-acceptedCh:
		}
	}()
	stream, err := client.ServeTools(streamCtx)
	if err != nil {
		return false, err
	}
	s.stream = stream
	if err := s.send(&batonv1.ServeToolsRequest{Kind: &batonv1.ServeToolsRequest_Declare{Declare: s.w.decl}}); err != nil {
		return false, recvErr(stream, err)
	}
	first, err := stream.Recv()
	if err != nil {
		if c := context.Cause(streamCtx); c != nil {
			return false, c
		}
		return false, endErr(err)
	}
	acc := first.GetAccepted()
	if acc == nil {
		return false, fmt.Errorf("baton: tool worker: expected accepted, got %T", first.GetKind())
	}
	acceptDone()
	if c := context.Cause(streamCtx); c != nil {
		return false, c // stopped (or timed out) just as the answer came
	}
	s.workerID = acc.GetWorkerId()
	interval := acc.GetHeartbeatInterval().AsDuration()
	if interval <= 0 {
		interval = 15 * time.Second
	}
	s.w.markAccepted(s.target, s.workerID)
	s.w.opts.Logger.Info("baton tool worker: accepted", "target", s.target, "worker_id", s.workerID)
	s.touch()

	received := make(chan error, 1)
	go func() { received <- s.receive(handlerCtx) }()
	go s.heartbeats(streamCtx, interval, cancelStream)

	select {
	case err := <-received: // the stream broke or the server ended it
		// Results can no longer be sent: cancel the handlers (not waited for: one that
		// ignores its ctx must not hold up the reconnect).
		cancelHandlers(err)
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		if c := context.Cause(streamCtx); c != nil && !errors.Is(c, context.Canceled) {
			err = c // the watchdog's reason
		}
		return true, err
	case <-s.w.stop:
	}
	return true, s.drain(received, cancelHandlers, cancelStream)
}

// drain: tell the server, wait for calls in flight (bounded by DrainGrace), half-close, wait
// for the server to end the stream (bounded by DrainGrace too).
func (s *workerStream) drain(received chan error, cancelHandlers, cancelStream context.CancelCauseFunc) error {
	grace := s.w.opts.DrainGrace
	_ = s.send(&batonv1.ServeToolsRequest{Kind: &batonv1.ServeToolsRequest_Drain{Drain: &batonv1.WorkerDrain{}}})
	idle := make(chan struct{})
	go func() { s.inflight.Wait(); close(idle) }()
	timer := time.NewTimer(grace)
	defer timer.Stop()
	var result error
	select {
	case <-idle:
	case err := <-received: // the server ended the stream first: nothing left to answer
		cancelHandlers(err)
		select {
		case <-idle:
		case <-timer.C:
		}
		return nil
	case <-timer.C:
		s.w.opts.Logger.Warn("baton tool worker: drain grace over, cancelling calls", "target", s.target)
		s.mu.Lock()
		for _, c := range s.calls {
			c.cancelled = true // no result after the grace period
		}
		s.mu.Unlock()
		cancelHandlers(ErrDrainTimeout)
		<-idle
		result = ErrDrainTimeout
	}
	s.closeSend()
	timer.Reset(grace)
	select {
	case <-received:
	case <-timer.C:
		cancelStream(errors.New("server did not end the stream after the half-close"))
		<-received
	}
	s.w.opts.Logger.Info("baton tool worker: drained", "target", s.target, "worker_id", s.workerID)
	return result
}

func (s *workerStream) touch() {
	s.mu.Lock()
	s.heard = time.Now()
	s.mu.Unlock()
}

// heartbeats sends a heartbeat every interval and ends the stream when the server was silent
// for three intervals (a half-open connection keepalive has not noticed yet).
func (s *workerStream) heartbeats(ctx context.Context, interval time.Duration, cancel context.CancelCauseFunc) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-ticker.C:
			s.mu.Lock()
			silent := now.Sub(s.heard)
			s.mu.Unlock()
			if silent > 3*interval {
				cancel(status.Errorf(codes.Unavailable, "no message from the server for %v", silent.Round(time.Millisecond)))
				return
			}
			_ = s.send(&batonv1.ServeToolsRequest{Kind: &batonv1.ServeToolsRequest_Heartbeat{
				Heartbeat: &batonv1.WorkerHeartbeat{Time: timestamppb.New(now)}}})
		}
	}
}

// receive handles server messages until the stream ends; nil when the server ended it cleanly.
func (s *workerStream) receive(handlerCtx context.Context) error {
	for {
		msg, err := s.stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return endErr(err)
		}
		s.touch()
		switch k := msg.GetKind().(type) {
		case *batonv1.ServeToolsResponse_Call:
			s.start(handlerCtx, k.Call)
		case *batonv1.ServeToolsResponse_Cancel:
			s.mu.Lock()
			if c, ok := s.calls[k.Cancel.GetCallId()]; ok {
				c.cancelled = true
				c.cancel(fmt.Errorf("%w: %s", ErrCallCancelled, k.Cancel.GetReason()))
			}
			s.mu.Unlock()
		}
	}
}

// start runs one call in its own goroutine and sends its result unless it was cancelled.
func (s *workerStream) start(parent context.Context, req *batonv1.ToolCallRequest) {
	ctx, cancel := context.WithCancelCause(parent)
	stopDeadline := func() bool { return false }
	if d := req.GetDeadline(); d != nil {
		var cancelDeadline context.CancelFunc
		ctx, cancelDeadline = context.WithDeadline(ctx, d.AsTime())
		stopDeadline = func() bool { cancelDeadline(); return true }
	}
	rc := &runningCall{cancel: cancel}
	s.mu.Lock()
	s.calls[req.GetCallId()] = rc
	s.mu.Unlock()
	s.inflight.Add(1)
	go func() {
		defer s.inflight.Done()
		defer cancel(nil)
		defer stopDeadline()
		res, err := s.w.call(ctx, s.workerID, req)
		s.mu.Lock()
		delete(s.calls, req.GetCallId())
		drop := rc.cancelled
		s.mu.Unlock()
		if drop {
			return // the server no longer waits for it
		}
		if err := s.send(&batonv1.ServeToolsRequest{Kind: &batonv1.ServeToolsRequest_Result{
			Result: resultMessage(req.GetCallId(), res, err)}}); err != nil {
			s.w.opts.Logger.Warn("baton tool worker: result not sent", "call_id", req.GetCallId(), "error", err)
		}
	}()
}

// call runs the handler of req's tool; a panic or an unknown tool becomes the call's error.
func (w *ToolWorker) call(ctx context.Context, workerID string, req *batonv1.ToolCallRequest) (res ToolResult, err error) {
	tool, ok := w.tools[req.GetTool()]
	if !ok {
		return ToolResult{}, fmt.Errorf("this worker does not serve tool %q", req.GetTool())
	}
	defer func() {
		if p := recover(); p != nil {
			w.opts.Logger.Error("baton tool worker: handler panicked", "tool", req.GetTool(), "panic", p)
			res, err = ToolResult{}, fmt.Errorf("tool %s panicked: %v", req.GetTool(), p)
		}
	}()
	call := ToolCall{
		ID:            req.GetCallId(),
		Tool:          req.GetTool(),
		Arguments:     req.GetArguments().AsMap(),
		SessionID:     req.GetSessionId(),
		AgentID:       req.GetAgentId(),
		CustomerID:    req.GetCustomerId(),
		CorrelationID: req.GetCorrelationId(),
		Attempt:       int(req.GetAttempt()),
		WorkerID:      workerID,
	}
	if d := req.GetDeadline(); d != nil {
		call.Deadline = d.AsTime()
	}
	return tool.handler(ctx, call, req.GetArguments())
}

// recvErr: a failed Send means the stream ended; Recv tells why.
func recvErr(stream grpc.BidiStreamingClient[batonv1.ServeToolsRequest, batonv1.ServeToolsResponse], sendErr error) error {
	if _, err := stream.Recv(); err != nil {
		return endErr(err)
	}
	return sendErr
}

func endErr(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
