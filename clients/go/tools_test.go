package baton

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
)

type address struct {
	City string `json:"city"`
}

type embedded struct {
	Tag string `json:"tag,omitempty"`
}

type schemaArgs struct {
	embedded
	OrderID  string            `json:"order_id" description:"the order number"`
	Count    int               `json:"count,omitempty"`
	Ratio    float64           `json:"ratio"`
	Express  *bool             `json:"express"`
	Tags     []string          `json:"tags"`
	Extra    map[string]int    `json:"extra,omitzero"`
	Priority string            `json:"priority" enum:"low, high"`
	Ship     address           `json:"ship"`
	When     time.Time         `json:"when"`
	Raw      json.RawMessage   `json:"raw,omitempty"`
	Any      any               `json:"any,omitempty"`
	NoTag    string            // no tag: keeps its Go name
	Skipped  string            `json:"-"`
	hidden   string            // unexported: not an argument
	Labels   map[string]string `json:"labels,omitempty"`
}

func TestSchemaOfStruct(t *testing.T) {
	got, err := SchemaOf(reflect.TypeFor[schemaArgs]())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"type":                 "object",
		"additionalProperties": false,
		"properties": map[string]any{
			"tag":      map[string]any{"type": "string"},
			"order_id": map[string]any{"type": "string", "description": "the order number"},
			"count":    map[string]any{"type": "integer"},
			"ratio":    map[string]any{"type": "number"},
			"express":  map[string]any{"type": "boolean"},
			"tags":     map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
			"extra":    map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "integer"}},
			"priority": map[string]any{"type": "string", "enum": []any{"low", "high"}},
			"ship": map[string]any{"type": "object", "additionalProperties": false,
				"properties": map[string]any{"city": map[string]any{"type": "string"}}, "required": []any{"city"}},
			"when":   map[string]any{"type": "string", "format": "date-time"},
			"raw":    map[string]any{},
			"any":    map[string]any{},
			"NoTag":  map[string]any{"type": "string"},
			"labels": map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}},
		},
		"required": []any{"order_id", "ratio", "tags", "priority", "ship", "when", "NoTag"},
	}
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", " ")
		w, _ := json.MarshalIndent(want, "", " ")
		t.Fatalf("schema\n%s\nwant\n%s", g, w)
	}
}

type selfRef struct {
	Next *selfRef `json:"next"`
}

func TestSchemaOfRefusesWhatJSONSchemaCannotSay(t *testing.T) {
	for name, typ := range map[string]reflect.Type{
		"not a struct": reflect.TypeFor[string](),
		"a map":        reflect.TypeFor[map[string]any](),
		"channel":      reflect.TypeFor[struct{ C chan int }](),
		"int keys":     reflect.TypeFor[struct{ M map[int]string }](),
		"recursive":    reflect.TypeFor[selfRef](),
	} {
		if s, err := SchemaOf(typ); err == nil {
			t.Errorf("%s: got schema %v, want an error", name, s)
		}
	}
	if s, err := SchemaOf(reflect.TypeFor[*struct{}]()); err != nil || len(s["required"].([]any)) != 0 {
		t.Errorf("pointer to an empty struct: %v %v", s, err)
	}
}

type orderQuery struct {
	OrderID string `json:"order_id"`
	Count   int    `json:"count,omitempty"`
}

func noop(context.Context, ToolCall, orderQuery) (ToolResult, error) { return ToolResult{}, nil }

func TestNewToolValidates(t *testing.T) {
	for name, make := range map[string]func() (*Tool, error){
		"bad name":    func() (*Tool, error) { return NewTool("9lives", "", noop) },
		"long name":   func() (*Tool, error) { return NewTool("a"+strings.Repeat("b", 64), "", noop) },
		"dash":        func() (*Tool, error) { return NewTool("check-order", "", noop) },
		"nil handler": func() (*Tool, error) { return NewTool[orderQuery]("x", "", nil) },
		"map args": func() (*Tool, error) {
			return NewTool("x", "", func(context.Context, ToolCall, map[string]any) (ToolResult, error) { return ToolResult{}, nil })
		},
		"schema no type": func() (*Tool, error) {
			return NewTool("x", "", noop, WithSchema(map[string]any{"properties": map[string]any{}}))
		},
		"long timeout": func() (*Tool, error) { return NewTool("x", "", noop, WithToolTimeout(11*time.Minute)) },
	} {
		if _, err := make(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	// Explicit schema for map arguments; options reach the declaration.
	schema := map[string]any{"type": "object", "properties": map[string]any{"q": map[string]any{"type": "string"}},
		"required": []string{"q"}}
	tool, err := NewTool("search", "Searches", func(_ context.Context, _ ToolCall, args map[string]any) (ToolResult, error) {
		return ToolResult{Data: args["q"]}, nil
	}, WithSchema(schema), WithToolTimeout(3*time.Second), RetrySafe())
	if err != nil {
		t.Fatal(err)
	}
	d, err := tool.declaration()
	if err != nil {
		t.Fatal(err)
	}
	if d.GetName() != "search" || d.GetDescription() != "Searches" || !d.GetRetrySafe() || d.GetTimeout().AsDuration() != 3*time.Second {
		t.Errorf("declaration %v", d)
	}
	if got := d.GetParameters().AsMap()["required"]; !reflect.DeepEqual(got, []any{"q"}) {
		t.Errorf("required %v", got)
	}
}

func TestToolDecodesArguments(t *testing.T) {
	var got orderQuery
	tool := MustTool("check_order_status", "", func(_ context.Context, _ ToolCall, q orderQuery) (ToolResult, error) {
		got = q
		return ToolResult{}, nil
	})
	args, _ := structpb.NewStruct(map[string]any{"order_id": "12345", "count": 3, "unknown": true})
	if _, err := tool.handler(context.Background(), ToolCall{}, args); err != nil {
		t.Fatal(err)
	}
	if got != (orderQuery{OrderID: "12345", Count: 3}) {
		t.Errorf("decoded %+v", got)
	}
	bad, _ := structpb.NewStruct(map[string]any{"order_id": 12})
	if _, err := tool.handler(context.Background(), ToolCall{}, bad); err == nil ||
		!strings.Contains(err.Error(), "invalid arguments for check_order_status") {
		t.Errorf("a number for a string field: %v", err)
	}
	if _, err := tool.handler(context.Background(), ToolCall{}, nil); err != nil {
		t.Errorf("no arguments at all: %v", err)
	}
}

func TestResultMessage(t *testing.T) {
	type data struct {
		Order  string `json:"order"`
		Status string `json:"status"`
	}
	asJSON := func(r any) string {
		b, _ := json.Marshal(r)
		return string(b)
	}
	ok := resultMessage("c1", ToolResult{Data: data{"12345", "in transit"}, Control: HandOff("asked")}, nil)
	if ok.GetCallId() != "c1" || ok.GetError() != "" ||
		asJSON(ok.GetData().AsInterface()) != `{"order":"12345","status":"in transit"}` ||
		!reflect.DeepEqual(ok.GetControl(), map[string]string{"mode": "manual", "reason": "asked"}) {
		t.Errorf("success: %v", ok)
	}
	failed := resultMessage("c2", ToolResult{Data: "ignored", Control: HandOff("")}, errors.New("CRM down"))
	if failed.GetError() != "CRM down" || failed.GetData() != nil || failed.GetControl() != nil {
		t.Errorf("failure: %v", failed)
	}
	if m := resultMessage("c3", ToolResult{Data: make(chan int)}, nil); !strings.Contains(m.GetError(), "not JSON") {
		t.Errorf("unencodable data: %v", m)
	}
	if m := resultMessage("c4", ToolResult{}, nil); m.GetData().GetKind() == nil {
		t.Errorf("nil data must be JSON null: %v", protojson.Format(m))
	}
	if m := resultMessage("c5", ToolResult{}, errors.New("")); m.GetError() == "" {
		t.Error("an error with an empty message must still fail the call")
	}
	if got := HandOff(""); !reflect.DeepEqual(got, map[string]string{"mode": "manual"}) {
		t.Errorf("HandOff without reason: %v", got)
	}
}
