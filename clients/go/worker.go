package baton

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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
