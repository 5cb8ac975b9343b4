package dev.baton.client;

import com.google.protobuf.Struct;
import dev.baton.v1.ToolDeclaration;
import java.time.Duration;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executor;
import java.util.concurrent.FutureTask;
import java.util.regex.Pattern;

/**
 * A tool a {@link ToolWorker} serves: name, description, JSON Schema of its parameters, optional
 * timeout and retry safety, and the handler that runs a call.
 *
 * <pre>{@code
 * record OrderArgs(@ToolParam("The order number") String orderId) {}
 *
 * WorkerTool checkOrder = WorkerTool.forRecord("check_order_status", OrderArgs.class)
 *     .description("Look up the delivery status of an order by its number.")
 *     .timeout(Duration.ofSeconds(5))
 *     .retrySafe(true)
 *     .handler((call, args) -> ToolResult.of(Map.of("found", true, "order", args.orderId())));
 * }</pre>
 *
 * The parameters' schema comes from the record's components (String, int/long, double, boolean,
 * enums, List/Set, Map, nested records; {@code Optional} ones are not required; {@link ToolParam}
 * adds a description), and each call's arguments are decoded into the record: arguments that do
 * not fit become an error result naming the argument, without calling the handler. {@link
 * #withSchema} takes an explicit schema and hands the arguments over as a {@code Map}.
 */
public final class WorkerTool {
  /** Runs a call on the worker's executor; a thrown exception becomes an error result. */
  @FunctionalInterface
  public interface Handler<A> {
    ToolResult handle(WorkerCall call, A args) throws Exception;
  }

  /** Starts a call and returns at once; a failed stage becomes an error result. */
  @FunctionalInterface
  public interface AsyncHandler<A> {
    CompletionStage<ToolResult> handle(WorkerCall call, A args);
  }

  private interface Decoder<A> {
    A decode(Struct arguments);
  }

  private static final Pattern NAME = Pattern.compile("[A-Za-z][A-Za-z0-9_]{0,63}");
  static final Duration MAX_TIMEOUT = Duration.ofMinutes(10);

  private final String name;
  private final String description;
  private final Map<String, Object> parameters;
  private final Duration timeout;
  private final boolean retrySafe;
  private final Invoker invoker;

  private interface Invoker {
    CompletableFuture<ToolResult> invoke(WorkerCall call, Executor executor);
  }

  private WorkerTool(Builder<?> b, Invoker invoker) {
    this.name = b.name;
    this.description = b.description;
    this.parameters = b.parameters;
    this.timeout = b.timeout;
    this.retrySafe = b.retrySafe;
    this.invoker = invoker;
  }

  /** A tool whose arguments are decoded into {@code argsType}, schema from its components. */
  public static <A extends Record> Builder<A> forRecord(String name, Class<A> argsType) {
    Objects.requireNonNull(argsType, "argsType");
    return new Builder<>(name, JsonValues.schema(argsType), s -> JsonValues.decode(s, argsType));
  }

  /**
   * A tool with an explicit JSON Schema (an object schema: {@code "type": "object"}); the handler
   * gets the arguments as plain Java values (numbers as Double).
   */
  public static Builder<Map<String, Object>> withSchema(String name, Map<String, ?> parameters) {
    if (!"object".equals(parameters.get("type"))) {
      throw new IllegalArgumentException("parameters of " + name + " must be an object schema (\"type\": \"object\")");
    }
    JsonValues.toStruct(parameters); // checks it is JSON
    @SuppressWarnings("unchecked")
    Map<String, Object> copy = (Map<String, Object>) (Map<String, ?>) Map.copyOf(parameters);
    return new Builder<>(name, copy, JsonValues::plain);
  }

  public String name() {
    return name;
  }

  public String description() {
    return description;
  }

  /** The JSON Schema of the parameters, as declared. */
  public Map<String, Object> parameters() {
    return parameters;
  }

  public Optional<Duration> timeout() {
    return Optional.ofNullable(timeout);
  }

  public boolean retrySafe() {
    return retrySafe;
  }

  ToolDeclaration declaration() {
    ToolDeclaration.Builder d =
        ToolDeclaration.newBuilder()
            .setName(name)
            .setDescription(description)
            .setParameters(JsonValues.toStruct(parameters))
            .setRetrySafe(retrySafe);
    if (timeout != null) {
      d.setTimeout(
          com.google.protobuf.Duration.newBuilder().setSeconds(timeout.getSeconds()).setNanos(timeout.getNano()));
    }
    return d.build();
  }

  /** Runs a call: the result, or a failure whose message becomes the error result. */
  CompletableFuture<ToolResult> invoke(WorkerCall call, Executor executor) {
    return invoker.invoke(call, executor);
  }

  /** Settings of a {@link WorkerTool}; {@link #handler} or {@link #asyncHandler} builds it. */
  public static final class Builder<A> {
    private final String name;
    private final Map<String, Object> parameters;
    private final Decoder<A> decoder;
    private String description = "";
    private Duration timeout;
    private boolean retrySafe;

    private Builder(String name, Map<String, Object> parameters, Decoder<A> decoder) {
      if (name == null || !NAME.matcher(name).matches()) {
        throw new IllegalArgumentException(
            "tool name " + name + ": letters, digits and _, starting with a letter, at most 64 characters");
      }
      this.name = name;
      this.parameters = parameters;
      this.decoder = decoder;
    }

    /** What the tool does, for humans and for the language model. */
    public Builder<A> description(String description) {
      this.description = Objects.requireNonNull(description, "description");
      return this;
    }

    /** How long a call may take (at most 10 minutes); unset: the server's default. */
    public Builder<A> timeout(Duration timeout) {
      if (timeout.isNegative() || timeout.isZero() || timeout.compareTo(MAX_TIMEOUT) > 0) {
        throw new IllegalArgumentException("timeout of " + name + " must be in (0, 10 minutes]");
      }
      this.timeout = timeout;
      return this;
    }

    /** The server may run a call again on another worker after this one disconnects mid-call. */
    public Builder<A> retrySafe(boolean retrySafe) {
      this.retrySafe = retrySafe;
      return this;
    }

    /**
     * A synchronous handler, run on the worker's executor; cancelling the call interrupts its
     * thread.
     */
    public WorkerTool handler(Handler<A> handler) {
      Objects.requireNonNull(handler, "handler");
      return new WorkerTool(
          this,
          (call, executor) -> {
            CompletableFuture<ToolResult> result = new CompletableFuture<>();
            FutureTask<Void> task =
                new FutureTask<>(
                    () -> {
                      try {
                        result.complete(handler.handle(call, decoder.decode(call.arguments())));
                      } catch (Throwable t) {
                        result.completeExceptionally(t);
                      }
                      return null;
                    });
            call.onCancel(() -> task.cancel(true));
            executor.execute(task);
            return result;
          });
    }

    /**
     * An asynchronous handler (called on the worker's executor, it must return quickly);
     * cancelling the call cancels the returned stage's future.
     */
    public WorkerTool asyncHandler(AsyncHandler<A> handler) {
      Objects.requireNonNull(handler, "handler");
      return new WorkerTool(
          this,
          (call, executor) ->
              CompletableFuture.supplyAsync(() -> decoder.decode(call.arguments()), executor)
                  .thenCompose(
                      args -> {
                        CompletableFuture<ToolResult> running = handler.handle(call, args).toCompletableFuture();
                        call.onCancel(() -> running.cancel(true));
                        return running;
                      }));
    }
  }
}
