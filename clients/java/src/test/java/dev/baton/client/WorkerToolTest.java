package dev.baton.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.Struct;
import com.google.protobuf.Value;
import dev.baton.v1.ToolCallRequest;
import dev.baton.v1.ToolCallResult;
import dev.baton.v1.ToolDeclaration;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executor;
import org.junit.jupiter.api.Test;

/** Declaring worker tools from records: schema, argument decoding, result mapping. */
class WorkerToolTest {
  enum Speed { FAST, SLOW }

  record Address(String city, Optional<String> zip) {}

  record Args(
      @ToolParam("The order number") String orderId,
      int count,
      long big,
      double ratio,
      boolean flag,
      List<String> tags,
      Speed speed,
      Map<String, Object> extra,
      Address address,
      Optional<Integer> limit) {}

  record OrderArgs(String orderId) {
    OrderArgs {
      if (orderId.isBlank()) {
        throw new IllegalArgumentException("orderId must not be blank");
      }
    }
  }

  private static final Executor DIRECT = Runnable::run;

  static Value str(String s) {
    return Value.newBuilder().setStringValue(s).build();
  }

  static Value num(double d) {
    return Value.newBuilder().setNumberValue(d).build();
  }

  static WorkerCall call(String tool, Struct arguments) {
    return new WorkerCall(
        ToolCallRequest.newBuilder().setCallId("c1").setTool(tool).setArguments(arguments).setAttempt(1).build(),
        "w-1",
        "in-process");
  }

  @Test
  void schemaFromRecordComponents() {
    Map<String, Object> schema = JsonValues.schema(Args.class);
    assertEquals("object", schema.get("type"));
    assertEquals(false, schema.get("additionalProperties"));
    assertEquals(
        List.of("orderId", "count", "big", "ratio", "flag", "tags", "speed", "extra", "address"),
        schema.get("required"));
    @SuppressWarnings("unchecked")
    Map<String, Object> p = (Map<String, Object>) schema.get("properties");
    assertEquals(Map.of("type", "string", "description", "The order number"), p.get("orderId"));
    assertEquals(Map.of("type", "integer"), p.get("count"));
    assertEquals(Map.of("type", "integer"), p.get("big"));
    assertEquals(Map.of("type", "number"), p.get("ratio"));
    assertEquals(Map.of("type", "boolean"), p.get("flag"));
    assertEquals(Map.of("type", "array", "items", Map.of("type", "string")), p.get("tags"));
    assertEquals(Map.of("type", "string", "enum", List.of("FAST", "SLOW")), p.get("speed"));
    assertEquals(Map.of("type", "object"), p.get("extra"));
    assertEquals(Map.of("type", "integer"), p.get("limit"));
    @SuppressWarnings("unchecked")
    Map<String, Object> address = (Map<String, Object>) p.get("address");
    assertEquals(List.of("city"), address.get("required"));
  }

  @Test
  void declarationCarriesTimeoutAndRetrySafety() {
    WorkerTool tool =
        WorkerTool.forRecord("check_order_status", OrderArgs.class)
            .description("Look up the delivery status of an order by its number.")
            .timeout(Duration.ofMillis(2500))
            .retrySafe(true)
            .handler((c, a) -> ToolResult.of(a.orderId()));
    ToolDeclaration d = tool.declaration();
    assertEquals("check_order_status", d.getName());
    assertTrue(d.getRetrySafe());
    assertEquals(2, d.getTimeout().getSeconds());
    assertEquals(500_000_000, d.getTimeout().getNanos());
    assertEquals("string", d.getParameters().getFieldsOrThrow("properties").getStructValue()
        .getFieldsOrThrow("orderId").getStructValue().getFieldsOrThrow("type").getStringValue());
    assertThrows(IllegalArgumentException.class, () -> WorkerTool.forRecord("9lives", OrderArgs.class));
    assertThrows(IllegalArgumentException.class,
        () -> WorkerTool.forRecord("t", OrderArgs.class).timeout(Duration.ofMinutes(11)));
    assertThrows(IllegalArgumentException.class,
        () -> WorkerTool.withSchema("t", Map.of("type", "string")));
  }

  @Test
  void argumentsAreDecodedIntoTheRecord() throws Exception {
    Struct args =
        Struct.newBuilder()
            .putFields("orderId", str("A-1"))
            .putFields("count", num(3))
            .putFields("big", num(1e12))
            .putFields("ratio", num(0.5))
            .putFields("flag", Value.newBuilder().setBoolValue(true).build())
            .putFields("tags", Value.newBuilder().setListValue(
                com.google.protobuf.ListValue.newBuilder().addValues(str("a")).addValues(str("b"))).build())
            .putFields("speed", str("SLOW"))
            .putFields("extra", Value.newBuilder().setStructValue(Struct.newBuilder().putFields("k", num(1))).build())
            .putFields("address", Value.newBuilder().setStructValue(Struct.newBuilder().putFields("city", str("Oslo"))).build())
            .build();
    Args a = JsonValues.decode(args, Args.class);
    assertEquals(new Args("A-1", 3, 1_000_000_000_000L, 0.5, true, List.of("a", "b"), Speed.SLOW,
        Map.of("k", 1.0), new Address("Oslo", Optional.empty()), Optional.empty()), a);
  }

  @Test
  void badArgumentsNameTheArgument() {
    Struct missing = Struct.getDefaultInstance();
    assertEquals("missing argument orderId",
        assertThrows(IllegalArgumentException.class, () -> JsonValues.decode(missing, OrderArgs.class)).getMessage());
    Struct extra = Struct.newBuilder().putFields("orderId", str("1")).putFields("x", num(1)).build();
    assertEquals("unexpected argument x",
        assertThrows(IllegalArgumentException.class, () -> JsonValues.decode(extra, OrderArgs.class)).getMessage());
    Struct wrong = Struct.newBuilder().putFields("orderId", num(1)).build();
    assertEquals("orderId must be a string",
        assertThrows(IllegalArgumentException.class, () -> JsonValues.decode(wrong, OrderArgs.class)).getMessage());
    Struct blank = Struct.newBuilder().putFields("orderId", str(" ")).build();
    assertTrue(assertThrows(IllegalArgumentException.class, () -> JsonValues.decode(blank, OrderArgs.class))
        .getMessage().contains("orderId must not be blank"));
  }

  @Test
  void handlerFailuresAndBadArgumentsBecomeErrorResults() throws Exception {
    WorkerTool failing =
        WorkerTool.forRecord("t", OrderArgs.class).handler((c, a) -> {
          throw new IllegalStateException("order service is down");
        });
    Struct ok = Struct.newBuilder().putFields("orderId", str("1")).build();
    ExecutionException e = assertThrows(ExecutionException.class, () -> failing.invoke(call("t", ok), DIRECT).get());
    ToolCallResult r = ToolWorker.resultMessage("c1", null, e.getCause());
    assertEquals("order service is down", r.getError());
    ExecutionException bad =
        assertThrows(ExecutionException.class, () -> failing.invoke(call("t", Struct.getDefaultInstance()), DIRECT).get());
    assertEquals("missing argument orderId", ToolWorker.resultMessage("c1", null, bad.getCause()).getError());
  }

  @Test
  void explicitSchemaHandsOverPlainValues() throws Exception {
    WorkerTool doubler =
        WorkerTool.withSchema("double_it", Map.of("type", "object", "properties", Map.of("n", Map.of("type", "integer"))))
            .asyncHandler((c, a) -> java.util.concurrent.CompletableFuture.completedFuture(
                ToolResult.of(((Double) a.get("n")) * 2)));
    ToolResult r = doubler.invoke(call("double_it", Struct.newBuilder().putFields("n", num(21)).build()), DIRECT).get();
    assertEquals(42.0, r.data());
  }

  @Test
  void resultMapping() {
    record Order(String order, String status) {}
    ToolCallResult data = ToolWorker.resultMessage("c1", ToolResult.of(Map.of("found", true, "order", new Order("123", "in transit"))), null);
    assertEquals("c1", data.getCallId());
    assertTrue(data.getError().isEmpty());
    Struct s = data.getData().getStructValue();
    assertTrue(s.getFieldsOrThrow("found").getBoolValue());
    assertEquals("in transit", s.getFieldsOrThrow("order").getStructValue().getFieldsOrThrow("status").getStringValue());

    ToolCallResult manual = ToolWorker.resultMessage("c2", ToolResult.handoff("asked for a human", Map.of("handoff", "requested")), null);
    assertEquals(Map.of("mode", "manual", "reason", "asked for a human"), manual.getControlMap());

    ToolCallResult none = ToolWorker.resultMessage("c3", ToolResult.of(null), null);
    assertEquals(Value.KindCase.NULL_VALUE, none.getData().getKindCase());

    ToolCallResult notJson = ToolWorker.resultMessage("c4", ToolResult.of(new Object()), null);
    assertTrue(notJson.getError().startsWith("the tool returned data that is not JSON"), notJson.getError());
    ToolCallResult nan = ToolWorker.resultMessage("c5", ToolResult.of(Double.NaN), null);
    assertFalse(nan.getError().isEmpty());
  }
}
