// Command order-worker serves the example agent's check_order_status tool from Go, over
// ToolWorkerService (the cross-language example of clients/tool-workers-smoke.sh):
//
//	BATON_WORKER_KEY=bk_key_... go run ./cmd/order-worker -targets 127.0.0.1:8800[,127.0.0.1:8801]
//
// It does what the Python tool of server/baton_server/examples/support.py does, and adds
// "served_by": "go" to its data so that a test can tell which worker ran the call. SIGTERM or
// SIGINT drains it (calls in flight finish, then it exits 0); a refused declaration or key
// exits 1 with the server's error.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	"unicode"

	baton "github.com/baton-dev/baton/clients/go"
)

// OrderQuery is check_order_status's arguments; its JSON Schema is derived from the fields.
type OrderQuery struct {
	OrderID string `json:"order_id" description:"The order number, as on the order confirmation"`
}

// OrderStatus is its data.
type OrderStatus struct {
	Found    bool   `json:"found"`
	Order    string `json:"order,omitempty"`
	Status   string `json:"status,omitempty"`
	Hint     string `json:"hint,omitempty"`
	ServedBy string `json:"served_by"`
}

func checkOrderStatus(_ context.Context, _ baton.ToolCall, q OrderQuery) (baton.ToolResult, error) {
	digits := strings.Map(func(r rune) rune {
		if unicode.IsDigit(r) {
			return r
		}
		return -1
	}, q.OrderID)
	if digits == "" {
		return baton.ToolResult{Data: OrderStatus{Hint: "ask for the order number", ServedBy: "go"}}, nil
	}
	if len(digits) > 8 {
		digits = digits[len(digits)-8:]
	}
	return baton.ToolResult{Data: OrderStatus{Found: true, Order: digits, Status: "in transit", ServedBy: "go"}}, nil
}

func main() {
	targets := flag.String("targets", os.Getenv("BATON_WORKER_TARGETS"), "comma-separated HOST:PORT of each replica")
	name := flag.String("name", "order-worker", "worker name shown by ListTools")
	flag.Parse()
	key := os.Getenv("BATON_WORKER_KEY")
	if *targets == "" || key == "" {
		fmt.Fprintln(os.Stderr, "usage: BATON_WORKER_KEY=... order-worker -targets HOST:PORT[,HOST:PORT]")
		os.Exit(2)
	}
	tool := baton.MustTool("check_order_status", "Look up the delivery status of an order by its number.",
		checkOrderStatus, baton.RetrySafe(), baton.WithToolTimeout(10*time.Second))
	w, err := baton.NewToolWorker(baton.WorkerOptions{
		Targets:            strings.Split(*targets, ","),
		Dial:               []baton.Option{baton.WithAPIKey(key)},
		Name:               *name,
		MaxConcurrentCalls: 8,
		Logger:             slog.New(slog.NewTextHandler(os.Stderr, nil)),
	}, tool)
	if err != nil {
		fmt.Fprintln(os.Stderr, "order-worker:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		select {
		case <-w.Accepted():
			fmt.Printf("order-worker: serving check_order_status as %v\n", w.WorkerIDs())
		case <-ctx.Done():
		}
	}()
	if err := w.Run(ctx); err != nil { // ctx's end (SIGTERM) drains and returns nil
		fmt.Fprintf(os.Stderr, "order-worker: %s: %v\n", baton.Code(err), err)
		os.Exit(1)
	}
	fmt.Println("order-worker: drained, bye")
}
