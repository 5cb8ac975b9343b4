package baton

import (
	"context"
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

type watchStream = grpc.ServerStreamingServer[batonv1.WatchHandoffsResponse]

// fakeInbox serves WatchHandoffs from a script: the i-th call runs script[i] (the last repeats).
type fakeInbox struct {
	batonv1.UnimplementedHandoffServiceServer
	script []func(*batonv1.WatchHandoffsRequest, watchStream) error

	mu    sync.Mutex
	after []int64 // after_position of each call, -1 when unset
}

func (f *fakeInbox) WatchHandoffs(req *batonv1.WatchHandoffsRequest, s watchStream) error {
	f.mu.Lock()
	i := min(len(f.after), len(f.script)-1)
	a := int64(-1)
	if req.AfterPosition != nil {
		a = req.GetAfterPosition()
	}
	f.after = append(f.after, a)
	f.mu.Unlock()
	return f.script[i](req, s)
}

func (f *fakeInbox) calls() []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int64(nil), f.after...)
}

func change(pos int64, typ batonv1.HandoffChangeType, id string) *batonv1.HandoffChange {
	return &batonv1.HandoffChange{Position: pos, Type: typ, Handoff: &batonv1.Handoff{Id: id}}
}

func changes(cs ...*batonv1.HandoffChange) *batonv1.WatchHandoffsResponse {
	return &batonv1.WatchHandoffsResponse{Changes: cs}
}

const (
	open    = batonv1.HandoffChangeType_HANDOFF_CHANGE_TYPE_OPEN
	claimed = batonv1.HandoffChangeType_HANDOFF_CHANGE_TYPE_CLAIMED
)

func serveInbox(t *testing.T, f *fakeInbox) batonv1.HandoffServiceClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	batonv1.RegisterHandoffServiceServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); srv.Stop() })
	return batonv1.NewHandoffServiceClient(conn)
}

type delivered struct {
	pos int64
	id  string
}

func drain(t *testing.T, seq func(func(*batonv1.HandoffChange, error) bool), n int) []delivered {
	t.Helper()
	var got []delivered
	for ch, err := range seq {
		if err != nil {
			t.Fatalf("unexpected error after %v: %v", got, err)
		}
		got = append(got, delivered{ch.GetPosition(), ch.GetHandoff().GetId()})
		if len(got) == n {
			break
		}
	}
	return got
}

func TestWatchHandoffsResumesExactlyOnce(t *testing.T) {
	f := &fakeInbox{script: []func(*batonv1.WatchHandoffsRequest, watchStream) error{
		func(_ *batonv1.WatchHandoffsRequest, s watchStream) error {
			_ = s.Send(changes(change(5, open, "h1"), change(5, open, "h2")))
			_ = s.Send(&batonv1.WatchHandoffsResponse{CaughtUp: true, CaughtUpPosition: 5})
			_ = s.Send(changes(change(6, claimed, "h1")))
			return status.Error(codes.Unavailable, "shutting down")
		},
		func(_ *batonv1.WatchHandoffsRequest, s watchStream) error {
			_ = s.Send(changes(change(6, claimed, "h1"), change(7, claimed, "h2"))) // 6 replayed
			_ = s.Send(&batonv1.WatchHandoffsResponse{CaughtUp: true, CaughtUpPosition: 7})
			_ = s.Send(&batonv1.WatchHandoffsResponse{Heartbeat: &batonv1.WatchHandoffsHeartbeat{Position: 9}})
			return nil // a server shutting down just ends the stream
		},
		func(_ *batonv1.WatchHandoffsRequest, s watchStream) error {
			_ = s.Send(changes(change(10, claimed, "h3")))
			<-s.Context().Done()
			return nil
		},
	}}
	client := serveInbox(t, f)
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var markers, reconnects int
	var infos []ReconnectInfo
	got := drain(t, WatchHandoffs(c, client, &batonv1.WatchHandoffsRequest{},
		WithBackoff(time.Millisecond, 5*time.Millisecond),
		WithOnInboxMarker(func(*batonv1.WatchHandoffsResponse) { markers++ }),
		WithOnReconnect(func(i ReconnectInfo) { reconnects++; infos = append(infos, i) })), 5)
	want := []delivered{{5, "h1"}, {5, "h2"}, {6, "h1"}, {7, "h2"}, {10, "h3"}}
	if len(got) != len(want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delivered %v, want %v", got, want)
		}
	}
	if calls := f.calls(); len(calls) != 3 || calls[0] != -1 || calls[1] != 6 || calls[2] != 9 {
		t.Errorf("after_position of the calls = %v, want [unset 6 9]", calls)
	}
	if markers != 3 || reconnects != 2 || infos[0].AfterPosition != 6 || infos[1].AfterPosition != 9 {
		t.Errorf("markers=%d reconnects=%v", markers, infos)
	}
}

// A stream broken in the middle of the snapshot: nothing of it is yielded, the next snapshot
// is yielded whole.
func TestWatchHandoffsBrokenSnapshot(t *testing.T) {
	f := &fakeInbox{script: []func(*batonv1.WatchHandoffsRequest, watchStream) error{
		func(_ *batonv1.WatchHandoffsRequest, s watchStream) error {
			_ = s.Send(changes(change(5, open, "h1")))
			return status.Error(codes.Unavailable, "gone")
		},
		func(_ *batonv1.WatchHandoffsRequest, s watchStream) error {
			_ = s.Send(changes(change(5, open, "h1"), change(5, open, "h2")))
			_ = s.Send(&batonv1.WatchHandoffsResponse{CaughtUp: true, CaughtUpPosition: 5})
			_ = s.Send(changes(change(6, claimed, "h2")))
			<-s.Context().Done()
			return nil
		},
	}}
	got := drain(t, WatchHandoffs(context.Background(), serveInbox(t, f), &batonv1.WatchHandoffsRequest{},
		WithBackoff(time.Millisecond, time.Millisecond)), 3)
	if len(got) != 3 || got[0] != (delivered{5, "h1"}) || got[1] != (delivered{5, "h2"}) || got[2] != (delivered{6, "h2"}) {
		t.Fatalf("delivered %v", got)
	}
	if calls := f.calls(); calls[1] != -1 {
		t.Errorf("resumed a broken snapshot from %d, want a new snapshot", calls[1])
	}
}

// A stream cut in the middle of a snapshot split across messages, and the inbox changes before
// the reconnect: the new snapshot has a newer position and other open handoffs. Only the new
// snapshot is yielded (nothing of the cut one), each still-open handoff once.
func TestWatchHandoffsSnapshotCutThenInboxChanged(t *testing.T) {
	f := &fakeInbox{script: []func(*batonv1.WatchHandoffsRequest, watchStream) error{
		func(_ *batonv1.WatchHandoffsRequest, s watchStream) error {
			_ = s.Send(changes(change(5, open, "h1"), change(5, open, "h2")))
			_ = s.Send(changes(change(5, open, "h3"))) // the split snapshot's second message
			return status.Error(codes.Unavailable, "cut before caught_up")
		},
		func(_ *batonv1.WatchHandoffsRequest, s watchStream) error {
			// Meanwhile h2 was released and h4 requested: a new snapshot at position 7.
			_ = s.Send(changes(change(7, open, "h1")))
			_ = s.Send(changes(change(7, open, "h3"), change(7, open, "h4")))
			_ = s.Send(&batonv1.WatchHandoffsResponse{CaughtUp: true, CaughtUpPosition: 7})
			_ = s.Send(changes(change(8, claimed, "h4")))
			<-s.Context().Done()
			return nil
		},
	}}
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := drain(t, WatchHandoffs(c, serveInbox(t, f), &batonv1.WatchHandoffsRequest{},
		WithBackoff(time.Millisecond, time.Millisecond)), 4)
	want := []delivered{{7, "h1"}, {7, "h3"}, {7, "h4"}, {8, "h4"}}
	if len(got) != len(want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delivered %v, want %v", got, want)
		}
	}
	if calls := f.calls(); len(calls) != 2 || calls[1] != -1 {
		t.Errorf("after_position of the calls = %v, want [unset unset]", calls)
	}
}

func TestWatchHandoffsFromPositionAndErrors(t *testing.T) {
	f := &fakeInbox{script: []func(*batonv1.WatchHandoffsRequest, watchStream) error{
		func(_ *batonv1.WatchHandoffsRequest, s watchStream) error {
			_ = s.Send(changes(change(3, claimed, "h1"), change(4, claimed, "h1")))
			return status.Error(codes.InvalidArgument, "after_position is past the newest change")
		},
	}}
	req := &batonv1.WatchHandoffsRequest{AfterPosition: new(int64)}
	*req.AfterPosition = 3
	var got []int64
	var last error
	for ch, err := range WatchHandoffs(context.Background(), serveInbox(t, f), req) {
		if err != nil {
			last = err
			continue
		}
		got = append(got, ch.GetPosition())
	}
	if len(got) != 1 || got[0] != 4 || !IsInvalidArgument(last) || f.calls()[0] != 3 {
		t.Fatalf("got %v, last error %v, calls %v", got, last, f.calls())
	}
	if req.GetAfterPosition() != 3 {
		t.Errorf("request modified: after_position %d", req.GetAfterPosition())
	}
}

func (f *fakeInbox) ListHandoffs(_ context.Context, req *batonv1.ListHandoffsRequest) (*batonv1.ListHandoffsResponse, error) {
	if req.GetSessionId() != "ses_1" {
		return nil, status.Error(codes.InvalidArgument, "session_id")
	}
	if req.GetPageToken() == "" {
		return &batonv1.ListHandoffsResponse{Handoffs: []*batonv1.Handoff{{Id: "h1"}, {Id: "h2"}}, NextPageToken: "p2"}, nil
	}
	return &batonv1.ListHandoffsResponse{Handoffs: []*batonv1.Handoff{{Id: "h3"}}}, nil
}

func TestListHandoffsAllPages(t *testing.T) {
	c := &Client{Handoffs: serveInbox(t, &fakeInbox{})}
	var ids []string
	for h, err := range c.ListHandoffs(context.Background(), &batonv1.ListHandoffsRequest{SessionId: "ses_1"}) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, h.GetId())
	}
	if len(ids) != 3 || ids[2] != "h3" {
		t.Fatalf("ids %v", ids)
	}
	var last error
	for _, err := range c.ListHandoffs(context.Background(), nil) {
		last = err
	}
	if !IsInvalidArgument(last) {
		t.Fatalf("error %v", last)
	}
}
