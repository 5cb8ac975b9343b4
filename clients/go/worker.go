package baton

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	batonv1 "github.com/baton-dev/baton/clients/go/gen/baton/v1"
)

// WorkerOptions configures a ToolWorker.
type WorkerOptions struct {
	// Targets are the servers to serve: one stream to each replica ("host:port", or any gRPC
	// target). At least one.
	Targets []string
	// Dial holds the connection options, as for Dial: the tool_worker key (WithAPIKey), TLS
	// (WithCACert, WithTLS, WithInsecure), keepalive.
	Dial []Option
	// Name is shown by ListTools (the server makes it unique). Default: hostname-pid.
	Name string
	// MaxConcurrentCalls is the most calls the worker runs at once, 1 to 1000 (default 1). The
	// server never sends more.
	MaxConcurrentCalls int
	// InitialBackoff and MaxBackoff bound the jittered exponential reconnect delay, as Follow's
	// (Backoff; defaults 200 ms and 10 s).
	InitialBackoff, MaxBackoff time.Duration
	// DrainGrace is how long Stop waits for calls in flight before cancelling them (default 10 s).
	DrainGrace time.Duration
	// Logger receives connects, reconnects and handler panics (default slog.Default()).
	Logger *slog.Logger
	// OnReconnect, when set, is called before each reconnect (e.g. for tests and metrics).
	OnReconnect func(WorkerReconnect)
}

// WorkerReconnect is what WorkerOptions.OnReconnect is told.
type WorkerReconnect struct {
	Target  string
	Err     error         // why the stream ended
	Attempt int           // 1 for the first reconnect after an accepted stream, 2 next in a row...
	Delay   time.Duration // wait before the next stream
}

// DefaultDrainGrace is how long a stopping worker waits for calls in flight.
const DefaultDrainGrace = 10 * time.Second

// Status codes that end the worker instead of a reconnect: a declaration or credential the
// server refused (it would refuse it again), or a server without ToolWorkerService.
var fatalWorkerCodes = []codes.Code{
	codes.InvalidArgument, codes.FailedPrecondition, codes.PermissionDenied,
	codes.Unauthenticated, codes.Unimplemented,
}

// ErrDrainTimeout is returned by Run when calls were still running when DrainGrace ran out
// (they were cancelled, their results not sent).
var ErrDrainTimeout = errors.New("baton: tool worker: calls still running after the drain grace period")

// ToolWorker serves tools to Baton servers over ToolWorkerService.ServeTools: it declares its
// tools, runs the calls the server sends (at most MaxConcurrentCalls at once), answers each
// with a result, reconnects with backoff when a stream breaks, and drains on Stop.
type ToolWorker struct {
	opts  WorkerOptions
	tools map[string]*Tool
	decl  *batonv1.WorkerDeclaration

	stopOnce sync.Once
	stop     chan struct{} // closed by Stop: drain and return
	runOnce  sync.Once

	mu         sync.Mutex
	accepted   chan struct{} // closed once every target accepted a declaration
	acceptedBy map[string]string
}

// NewToolWorker checks the options and the tools' declarations; Run connects.
func NewToolWorker(opts WorkerOptions, tools ...*Tool) (*ToolWorker, error) {
	if len(opts.Targets) == 0 {
		return nil, errors.New("baton: tool worker: no Targets")
	}
	if len(tools) == 0 {
		return nil, errors.New("baton: tool worker: no tools")
	}
	if opts.MaxConcurrentCalls == 0 {
		opts.MaxConcurrentCalls = 1
	}
	if opts.MaxConcurrentCalls < 1 || opts.MaxConcurrentCalls > 1000 {
		return nil, fmt.Errorf("baton: tool worker: MaxConcurrentCalls %d: between 1 and 1000", opts.MaxConcurrentCalls)
	}
	if opts.Name == "" {
		host, _ := os.Hostname()
		opts.Name = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if opts.InitialBackoff <= 0 {
		opts.InitialBackoff = 200 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 10 * time.Second
	}
	if opts.DrainGrace <= 0 {
		opts.DrainGrace = DefaultDrainGrace
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	w := &ToolWorker{
		opts:       opts,
		tools:      map[string]*Tool{},
		decl:       &batonv1.WorkerDeclaration{WorkerName: opts.Name, MaxConcurrentCalls: int32(opts.MaxConcurrentCalls)},
		stop:       make(chan struct{}),
		accepted:   make(chan struct{}),
		acceptedBy: map[string]string{},
	}
	for _, t := range tools {
		if t == nil || t.handler == nil {
			return nil, errors.New("baton: tool worker: a tool not made with NewTool")
		}
		if _, dup := w.tools[t.Name]; dup {
			return nil, fmt.Errorf("baton: tool worker: tool %s given twice", t.Name)
		}
		d, err := t.declaration()
		if err != nil {
			return nil, err
		}
		w.tools[t.Name] = t
		w.decl.Tools = append(w.decl.Tools, d)
	}
	return w, nil
}

// Accepted is closed once every target has accepted the worker's declaration (the first
// time; reconnects do not reopen it).
func (w *ToolWorker) Accepted() <-chan struct{} { return w.accepted }

// WorkerIDs maps each target that accepted the worker to the worker id it gave.
func (w *ToolWorker) WorkerIDs() map[string]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]string, len(w.acceptedBy))
	for k, v := range w.acceptedBy {
		out[k] = v
	}
	return out
}

// Stop asks the worker to drain: each stream tells its server (drain: no new calls), waits
// for the calls in flight (at most DrainGrace), half-closes and waits for the server to end
// the stream. Run then returns. Stop returns at once; it may be called more than once.
func (w *ToolWorker) Stop() { w.stopOnce.Do(func() { close(w.stop) }) }

// Run serves until Stop or ctx's end (both drain gracefully), or until a server refuses the
// declaration or the credentials (INVALID_ARGUMENT with field violations, FAILED_PRECONDITION
// for a name loaded as a Python tool, PERMISSION_DENIED, UNAUTHENTICATED): Run then drains
// the other targets and returns that status error (read it with Code, FieldViolations...).
// Anything else (UNAVAILABLE, a server shutting down, a broken connection, no heartbeat for
// three intervals) reconnects with backoff and declares again. A drain that ran out of grace
// returns ErrDrainTimeout. Run may be called once.
func (w *ToolWorker) Run(ctx context.Context) error {
	err := errors.New("baton: ToolWorker.Run called twice")
	w.runOnce.Do(func() { err = w.run(ctx) })
	return err
}

func (w *ToolWorker) run(ctx context.Context) error {
	conns := make([]*grpc.ClientConn, 0, len(w.opts.Targets))
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for _, target := range w.opts.Targets {
		conn, err := DialConn(target, w.opts.Dial...)
		if err != nil {
			return err
		}
		conns = append(conns, conn)
	}
	// The first fatal error stops every loop (the others drain), then Run returns it.
	var (
		fatalOnce sync.Once
		fatal     error
		drainErr  error
		errMu     sync.Mutex
		wg        sync.WaitGroup
	)
	stopAll := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			w.Stop()
		case <-w.stop:
		}
		close(stopAll)
	}()
	for i, target := range w.opts.Targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := w.serveTarget(target, batonv1.NewToolWorkerServiceClient(conns[i]))
			switch {
			case errors.Is(err, ErrDrainTimeout):
				errMu.Lock()
				drainErr = err
				errMu.Unlock()
			case err != nil:
				fatalOnce.Do(func() { fatal = fmt.Errorf("baton: tool worker at %s: %w", target, err) })
				w.Stop()
			}
		}()
	}
	wg.Wait()
	<-stopAll
	if fatal != nil {
		return fatal
	}
	return drainErr
}

// serveTarget runs streams to one target until Stop, reconnecting with backoff. It returns a
// fatal status error, ErrDrainTimeout, or nil after a clean drain.
func (w *ToolWorker) serveTarget(target string, client batonv1.ToolWorkerServiceClient) error {
	failures := 0
	for {
		s := &workerStream{w: w, target: target, calls: map[string]*runningCall{}}
		accepted, err := s.run(client)
		if errors.Is(err, ErrDrainTimeout) || slices.Contains(fatalWorkerCodes, status.Code(err)) {
			return err
		}
		select {
		case <-w.stop:
			return nil // drained, or stopped before the server accepted
		default:
		}
		if accepted {
			failures = 0
		}
		failures++
		delay := Backoff(w.opts.InitialBackoff, w.opts.MaxBackoff, failures)
		if d, ok := RetryDelay(err); ok && d > delay {
			delay = d
		}
		w.opts.Logger.Warn("baton tool worker: stream ended, reconnecting",
			"target", target, "error", err, "attempt", failures, "delay", delay)
		if w.opts.OnReconnect != nil {
			w.opts.OnReconnect(WorkerReconnect{Target: target, Err: err, Attempt: failures, Delay: delay})
		}
		timer := time.NewTimer(delay)
		select {
		case <-w.stop:
			timer.Stop()
			return nil
		case <-timer.C:
		}
	}
}

func (w *ToolWorker) markAccepted(target, workerID string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.acceptedBy[target] = workerID
	if len(w.acceptedBy) == len(w.opts.Targets) {
		select {
		case <-w.accepted:
		default:
			close(w.accepted)
		}
	}
}

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

var (
	errServerCancelled = errors.New("baton: the server cancelled the call")
	errStopping        = errors.New("baton: tool worker stopping")
)

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
				c.cancel(fmt.Errorf("%w: %s", errServerCancelled, k.Cancel.GetReason()))
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
