package baton

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	batonv1 "github.com/baton-dev/baton/clients/go/gen/baton/v1"
)

// fakeEvents serves ListEvents from a script: the i-th call runs script[i] (the last one repeats).
type fakeEvents struct {
	batonv1.UnimplementedEventServiceServer
	script []func(*batonv1.ListEventsRequest, grpc.ServerStreamingServer[batonv1.ListEventsResponse]) error

	mu         sync.Mutex
	minOffsets []int64
}

func (f *fakeEvents) ListEvents(req *batonv1.ListEventsRequest,
	stream grpc.ServerStreamingServer[batonv1.ListEventsResponse]) error {
	f.mu.Lock()
	i := min(len(f.minOffsets), len(f.script)-1)
	f.minOffsets = append(f.minOffsets, req.GetMinOffset())
	f.mu.Unlock()
	return f.script[i](req, stream)
}

func (f *fakeEvents) calls() []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int64(nil), f.minOffsets...)
}

func events(offsets ...int64) *batonv1.ListEventsResponse {
	resp := &batonv1.ListEventsResponse{}
	for _, o := range offsets {
		resp.Events = append(resp.Events, &batonv1.Event{Offset: o, SessionId: "ses_1"})
	}
	return resp
}

func serve(t *testing.T, fake *fakeEvents) batonv1.EventServiceClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	batonv1.RegisterEventServiceServer(srv, fake)
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); srv.Stop() })
	return batonv1.NewEventServiceClient(conn)
}

func TestFollowResumesExactlyOnce(t *testing.T) {
	fake := &fakeEvents{script: []func(*batonv1.ListEventsRequest, grpc.ServerStreamingServer[batonv1.ListEventsResponse]) error{
		func(_ *batonv1.ListEventsRequest, s grpc.ServerStreamingServer[batonv1.ListEventsResponse]) error {
			_ = s.Send(events(0, 1, 2))
			_ = s.Send(&batonv1.ListEventsResponse{CaughtUp: true})
			return status.Error(codes.Unavailable, "shutting down")
		},
		func(_ *batonv1.ListEventsRequest, s grpc.ServerStreamingServer[batonv1.ListEventsResponse]) error {
			_ = s.Send(events(2, 3)) // 2 is a replay: must not be delivered again
			return nil               // a clean end of a follow stream is unexpected
		},
		func(_ *batonv1.ListEventsRequest, s grpc.ServerStreamingServer[batonv1.ListEventsResponse]) error {
			_ = s.Send(&batonv1.ListEventsResponse{Heartbeat: &batonv1.ListEventsHeartbeat{NextOffset: 4}})
			_ = s.Send(events(4, 5))
			<-s.Context().Done()
			return nil
		},
	}}
	client := serve(t, fake)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	var got []int64
	var markers, reconnects int
	for ev, err := range Follow(ctx, client, "ses_1", 0, WithBackoff(time.Millisecond, 5*time.Millisecond),
		WithOnMarker(func(*batonv1.ListEventsResponse) { markers++ }),
		WithOnReconnect(func(ReconnectInfo) { reconnects++ })) {
		if err != nil {
			t.Fatalf("unexpected error after %v: %v", got, err)
		}
		got = append(got, ev.GetOffset())
		if len(got) == 6 {
			break
		}
	}
	for i, o := range got {
		if o != int64(i) {
			t.Fatalf("offsets %v, want 0..5 once each", got)
		}
	}
	if calls := fake.calls(); len(calls) != 3 || calls[0] != 0 || calls[1] != 3 || calls[2] != 4 {
		t.Errorf("min_offsets of the calls = %v, want [0 3 4]", calls)
	}
	if markers != 2 || reconnects != 2 {
		t.Errorf("markers=%d reconnects=%d, want 2 and 2", markers, reconnects)
	}
}

func TestFollowStopsOnNonRetryableError(t *testing.T) {
	fake := &fakeEvents{script: []func(*batonv1.ListEventsRequest, grpc.ServerStreamingServer[batonv1.ListEventsResponse]) error{
		func(*batonv1.ListEventsRequest, grpc.ServerStreamingServer[batonv1.ListEventsResponse]) error {
			return status.Error(codes.NotFound, "no such session")
		},
	}}
	client := serve(t, fake)
	var errs []error
	for ev, err := range Follow(context.Background(), client, "ses_x", 0) {
		if ev != nil {
			t.Fatalf("unexpected event %v", ev)
		}
		errs = append(errs, err)
	}
	if len(errs) != 1 || status.Code(errs[0]) != codes.NotFound || len(fake.calls()) != 1 {
		t.Fatalf("errors %v after %d calls, want one NotFound after 1 call", errs, len(fake.calls()))
	}
}

func TestFollowMaxRetries(t *testing.T) {
	fake := &fakeEvents{script: []func(*batonv1.ListEventsRequest, grpc.ServerStreamingServer[batonv1.ListEventsResponse]) error{
		func(*batonv1.ListEventsRequest, grpc.ServerStreamingServer[batonv1.ListEventsResponse]) error {
			return status.Error(codes.Unavailable, "down")
		},
	}}
	client := serve(t, fake)
	var last error
	for _, err := range Follow(context.Background(), client, "ses_1", 7,
		WithBackoff(time.Millisecond, time.Millisecond), WithMaxRetries(2)) {
		last = err
	}
	if status.Code(last) != codes.Unavailable || len(fake.calls()) != 3 {
		t.Fatalf("last error %v after %d calls, want Unavailable after 3", last, len(fake.calls()))
	}
}

func TestFollowEndsWithContext(t *testing.T) {
	fake := &fakeEvents{script: []func(*batonv1.ListEventsRequest, grpc.ServerStreamingServer[batonv1.ListEventsResponse]) error{
		func(_ *batonv1.ListEventsRequest, s grpc.ServerStreamingServer[batonv1.ListEventsResponse]) error {
			_ = s.Send(events(0))
			<-s.Context().Done()
			return nil
		},
	}}
	client := serve(t, fake)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var last error
	for ev, err := range Follow(ctx, client, "ses_1", 0) {
		if ev != nil {
			cancel()
		}
		last = err
	}
	if !errors.Is(last, context.Canceled) {
		t.Fatalf("last error %v, want context.Canceled", last)
	}
}
