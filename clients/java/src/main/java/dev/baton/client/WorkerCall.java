package dev.baton.client;

import com.google.protobuf.Struct;
import dev.baton.v1.ToolCallRequest;
import java.time.Duration;
import java.time.Instant;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;

/**
 * One call of a worker tool, as its handler sees it: who made it (session, agent, customer, the
 * turn's correlation id), until when the server waits for it, which attempt it is, the raw
 * arguments, and whether it was cancelled.
 *
 * <p>The server cancels a call when its deadline passes or its turn ends; the worker then stops
 * waiting for the handler and sends nothing. A synchronous handler's thread is interrupted; a
 * long handler can also poll {@link #isCancelled()} or register {@link #onCancel(Runnable)}.
 */
public final class WorkerCall {
  private final ToolCallRequest request;
  private final String workerId;
  private final String target;
  private final CompletableFuture<String> cancelled = new CompletableFuture<>();

  WorkerCall(ToolCallRequest request, String workerId, String target) {
    this.request = request;
    this.workerId = workerId;
    this.target = target;
  }

  public String callId() {
    return request.getCallId();
  }

  public String tool() {
    return request.getTool();
  }

  /** The arguments as the agent chose them (the handler also gets them decoded). */
  public Struct arguments() {
    return request.getArguments();
  }

  public String sessionId() {
    return request.getSessionId();
  }

  public String agentId() {
    return request.getAgentId();
  }

  public String customerId() {
    return request.getCustomerId();
  }

  /** The turn's correlation id (the customer message that started it). */
  public String correlationId() {
    return request.getCorrelationId();
  }

  /** After this the server no longer waits for the result (empty when it sent none). */
  public Optional<Instant> deadline() {
    if (!request.hasDeadline()) {
      return Optional.empty();
    }
    return Optional.of(Instant.ofEpochSecond(request.getDeadline().getSeconds(), request.getDeadline().getNanos()));
  }

  /** Time left until the deadline (negative once past; empty without a deadline). */
  public Optional<Duration> remaining() {
    return deadline().map(d -> Duration.between(Instant.now(), d));
  }

  /** 1 for the first attempt; more when a retry-safe call is sent again after a disconnect. */
  public int attempt() {
    return request.getAttempt();
  }

  /** The id the server gave the worker's stream this call came on. */
  public String workerId() {
    return workerId;
  }

  /** The server address (one of the worker's targets) the call came from. */
  public String target() {
    return target;
  }

  public boolean isCancelled() {
    return cancelled.isDone();
  }

  /** Runs {@code action} once when the call is cancelled (at once if it already was). */
  public void onCancel(Runnable action) {
    cancelled.thenRun(action);
  }

  /** Completes with the server's reason when the call is cancelled. */
  public CompletableFuture<String> cancellation() {
    return cancelled.copy();
  }

  void cancel(String reason) {
    cancelled.complete(reason);
  }

  @Override
  public String toString() {
    return "WorkerCall{" + tool() + " " + callId() + ", session " + sessionId() + ", attempt " + attempt() + "}";
  }
}
