package baton

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	batonv1 "github.com/baton-dev/baton/clients/go/gen/baton/v1"
)

// ToolCall is what a tool's handler is told about the call it runs.
type ToolCall struct {
	ID            string         // the call's id (echoed in the result)
	Tool          string         // the tool's name
	Arguments     map[string]any // the arguments as the agent chose them (also decoded into args)
	SessionID     string         // the session whose turn made the call
	AgentID       string         // the session's agent
	CustomerID    string         // the session's customer
	CorrelationID string         // the turn (the customer message that started it)
	Deadline      time.Time      // after it the server no longer waits (zero: none given); ctx has it too
	Attempt       int            // 1, or more when a retry-safe call is sent again after a disconnect
	WorkerID      string         // this worker's id on the server that sent the call
}

// ToolResult is what a handler returns: Data (any value encoding/json can marshal) is shown to
// the model and recorded in the TOOL event; Control steers the session as a Python tool's
// control does: HandOff(reason) opens a handoff.
type ToolResult struct {
	Data    any
	Control map[string]string
}

// HandOff is the control that hands the session to a human ({"mode": "manual", "reason":
// reason}); the handoff opens in the transaction of the TOOL event.
func HandOff(reason string) map[string]string {
	c := map[string]string{"mode": "manual"}
	if reason != "" {
		c["reason"] = reason
	}
	return c
}

// Tool is a tool a ToolWorker serves: its declaration and its handler. Make one with NewTool.
type Tool struct {
	Name        string
	Description string
	Parameters  map[string]any // JSON Schema of the arguments, an object schema
	Timeout     time.Duration  // 0: the server's default tool timeout
	RetrySafe   bool           // may run again on another worker if this one disconnects mid-call

	handler func(ctx context.Context, call ToolCall, args *structpb.Struct) (ToolResult, error)
}

// ToolOption configures NewTool.
type ToolOption func(*toolConfig)

type toolConfig struct {
	schema    map[string]any
	timeout   time.Duration
	retrySafe bool
}

// WithSchema declares the parameters' JSON Schema explicitly instead of deriving it from the
// handler's argument type (e.g. for map[string]any arguments, or keywords reflection does not
// produce). It must be an object schema ("type": "object").
func WithSchema(schema map[string]any) ToolOption {
	return func(c *toolConfig) { c.schema = schema }
}

// WithToolTimeout is how long a call may take before the server gives up on it (at most 10
// minutes; default: the server's tool timeout). The handler's ctx ends at the call's deadline.
func WithToolTimeout(d time.Duration) ToolOption {
	return func(c *toolConfig) { c.timeout = d }
}

// RetrySafe declares that running a call twice does no harm: when the worker disconnects
// mid-call, the server sends it to another worker instead of failing it.
func RetrySafe() ToolOption {
	return func(c *toolConfig) { c.retrySafe = true }
}

var toolNamePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,63}$`)

// NewTool declares a tool whose arguments are decoded into a T (with encoding/json, from the
// call's arguments). The parameters' JSON Schema is derived from T, a struct: one property per
// exported field, named by its json tag; a field is required unless it is a pointer or tagged
// omitempty/omitzero; a `description:"..."` tag describes it (the model, and the server's
// offline argument extraction, read descriptions), an `enum:"a,b"` tag lists the allowed values.
// Nested structs, slices, maps with string keys, pointers and time.Time are supported.
//
//	type OrderQuery struct {
//		OrderID string `json:"order_id" description:"the order number"`
//	}
//	tool, err := baton.NewTool("check_order_status", "Look up an order",
//		func(ctx context.Context, call baton.ToolCall, q OrderQuery) (baton.ToolResult, error) { ... })
func NewTool[T any](name, description string,
	handler func(ctx context.Context, call ToolCall, args T) (ToolResult, error),
	opts ...ToolOption) (*Tool, error) {
	var cfg toolConfig
	for _, opt := range opts {
		opt(&cfg)
	}
	if !toolNamePattern.MatchString(name) {
		return nil, fmt.Errorf("baton: tool name %q: letters, digits and _, starting with a letter, at most 64 characters", name)
	}
	if handler == nil {
		return nil, fmt.Errorf("baton: tool %s: nil handler", name)
	}
	schema := cfg.schema
	if schema == nil {
		var err error
		if schema, err = SchemaOf(reflect.TypeFor[T]()); err != nil {
			return nil, fmt.Errorf("baton: tool %s: %w (or give WithSchema)", name, err)
		}
	} else if schema["type"] != "object" {
		return nil, fmt.Errorf(`baton: tool %s: WithSchema: the parameters schema must have "type": "object"`, name)
	}
	if cfg.timeout < 0 || cfg.timeout > 10*time.Minute {
		return nil, fmt.Errorf("baton: tool %s: timeout %v: between 0 and 10 minutes", name, cfg.timeout)
	}
	return &Tool{
		Name:        name,
		Description: description,
		Parameters:  schema,
		Timeout:     cfg.timeout,
		RetrySafe:   cfg.retrySafe,
		handler: func(ctx context.Context, call ToolCall, raw *structpb.Struct) (ToolResult, error) {
			var args T
			if err := decodeArguments(raw, &args); err != nil {
				return ToolResult{}, fmt.Errorf("invalid arguments for %s: %w", name, err)
			}
			return handler(ctx, call, args)
		},
	}, nil
}

// MustTool is NewTool that panics on a bad declaration (for package-level tool variables).
func MustTool[T any](name, description string,
	handler func(ctx context.Context, call ToolCall, args T) (ToolResult, error), opts ...ToolOption) *Tool {
	t, err := NewTool(name, description, handler, opts...)
	if err != nil {
		panic(err)
	}
	return t
}

func decodeArguments(raw *structpb.Struct, into any) error {
	if raw == nil {
		raw = &structpb.Struct{}
	}
	b, err := protojson.Marshal(raw)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, into)
}

// declaration is the tool's ToolDeclaration message.
func (t *Tool) declaration() (*batonv1.ToolDeclaration, error) {
	params, err := structpb.NewStruct(jsonRoundTrip(t.Parameters))
	if err != nil {
		return nil, fmt.Errorf("baton: tool %s: parameters schema: %w", t.Name, err)
	}
	d := &batonv1.ToolDeclaration{Name: t.Name, Description: t.Description, Parameters: params, RetrySafe: t.RetrySafe}
	if t.Timeout > 0 {
		d.Timeout = durationpb.New(t.Timeout)
	}
	return d, nil
}

// jsonRoundTrip turns a schema built with Go types ([]string, nested maps) into the plain
// map[string]any / []any shape structpb accepts.
func jsonRoundTrip(m map[string]any) map[string]any {
	b, err := json.Marshal(m)
	if err != nil {
		return m // structpb.NewStruct reports what it cannot take
	}
	var out map[string]any
	if json.Unmarshal(b, &out) != nil {
		return m
	}
	return out
}

// resultMessage maps a handler's outcome to the ToolCallResult sent to the server: an error
// becomes `error` (the message; data and control are then not sent), data is encoded with
// encoding/json (a value it cannot encode is reported as the call's error).
func resultMessage(callID string, res ToolResult, err error) *batonv1.ToolCallResult {
	out := &batonv1.ToolCallResult{CallId: callID}
	if err != nil {
		out.Error = err.Error()
		if out.Error == "" {
			out.Error = "tool failed"
		}
		return out
	}
	data, derr := jsonValue(res.Data)
	if derr != nil {
		out.Error = fmt.Sprintf("tool result is not JSON: %v", derr)
		return out
	}
	out.Data = data
	if len(res.Control) > 0 {
		out.Control = make(map[string]string, len(res.Control))
		for k, v := range res.Control {
			out.Control[k] = v
		}
	}
	return out
}

func jsonValue(v any) (*structpb.Value, error) {
	if v == nil {
		return structpb.NewNullValue(), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out structpb.Value
	if err := protojson.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SchemaOf derives the JSON Schema of a tool's arguments from a struct type (see NewTool).
func SchemaOf(t reflect.Type) (map[string]any, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("arguments type %v is not a struct: its schema cannot be derived", t)
	}
	return objectSchema(t, map[reflect.Type]bool{})
}

var timeType = reflect.TypeFor[time.Time]()

func objectSchema(t reflect.Type, seen map[reflect.Type]bool) (map[string]any, error) {
	if seen[t] {
		return nil, fmt.Errorf("type %v refers to itself: give WithSchema", t)
	}
	seen[t] = true
	defer delete(seen, t)
	props := map[string]any{}
	required := []any{}
	if err := addFields(t, seen, props, &required); err != nil {
		return nil, err
	}
	return map[string]any{
		"type":                 "object",
		"properties":           props,
		"required":             required,
		"additionalProperties": false,
	}, nil
}

// addFields adds t's fields as encoding/json sees them (embedded structs flattened).
func addFields(t reflect.Type, seen map[reflect.Type]bool, props map[string]any, required *[]any) error {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, flags, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				if err := addFields(ft, seen, props, required); err != nil {
					return err
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		s, err := valueSchema(f.Type, seen)
		if err != nil {
			return fmt.Errorf("field %s: %w", f.Name, err)
		}
		if d := f.Tag.Get("description"); d != "" {
			s["description"] = d
		}
		if e := f.Tag.Get("enum"); e != "" {
			var values []any
			for _, v := range strings.Split(e, ",") {
				values = append(values, strings.TrimSpace(v))
			}
			s["enum"] = values
		}
		props[name] = s
		optional := f.Type.Kind() == reflect.Pointer || strings.Contains(","+flags+",", ",omitempty,") ||
			strings.Contains(","+flags+",", ",omitzero,")
		if !optional {
			*required = append(*required, name)
		}
	}
	return nil
}

func valueSchema(t reflect.Type, seen map[reflect.Type]bool) (map[string]any, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == timeType {
		return map[string]any{"type": "string", "format": "date-time"}, nil
	}
	if t == reflect.TypeFor[json.RawMessage]() {
		return map[string]any{}, nil
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}, nil
	case reflect.Bool:
		return map[string]any{"type": "boolean"}, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}, nil
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}, nil
	case reflect.Interface:
		return map[string]any{}, nil // any JSON value
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "contentEncoding": "base64"}, nil
		}
		items, err := valueSchema(t.Elem(), seen)
		if err != nil {
			return nil, err
		}
		return map[string]any{"type": "array", "items": items}, nil
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return nil, fmt.Errorf("map key %v: JSON object keys are strings", t.Key())
		}
		values, err := valueSchema(t.Elem(), seen)
		if err != nil {
			return nil, err
		}
		return map[string]any{"type": "object", "additionalProperties": values}, nil
	case reflect.Struct:
		return objectSchema(t, seen)
	}
	return nil, errors.New("type " + t.String() + " has no JSON Schema")
}
