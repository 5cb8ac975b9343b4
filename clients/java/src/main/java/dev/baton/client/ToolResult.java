package dev.baton.client;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;

/**
 * What a worker tool's handler returns: {@code data} (any JSON value: null, Boolean, Number,
 * String, Map, List, a record, ...) is shown to the model and recorded in the TOOL event; {@code
 * control} steers the session as a Python tool's control does: {@code mode=manual} opens a
 * handoff (see {@link #handoff}).
 */
public record ToolResult(Object data, Map<String, String> control) {
  public ToolResult {
    control = Map.copyOf(Objects.requireNonNull(control, "control"));
  }

  /** A result with data and no control. */
  public static ToolResult of(Object data) {
    return new ToolResult(data, Map.of());
  }

  /** Hands the session to a human: control {@code {"mode": "manual", "reason": reason}}. */
  public static ToolResult handoff(String reason, Object data) {
    Map<String, String> control = new LinkedHashMap<>();
    control.put("mode", "manual");
    control.put("reason", Objects.requireNonNull(reason, "reason"));
    return new ToolResult(data, control);
  }

  /** {@link #handoff(String, Object)} without data. */
  public static ToolResult handoff(String reason) {
    return handoff(reason, null);
  }
}
