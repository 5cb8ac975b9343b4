package dev.baton.client;

import dev.baton.v1.ServeToolsRequest;
import dev.baton.v1.ServeToolsResponse;
import dev.baton.v1.ToolCallRequest;
import dev.baton.v1.ToolCallResult;
import dev.baton.v1.ToolWorkerServiceGrpc;
import dev.baton.v1.WorkerDeclaration;
import dev.baton.v1.WorkerDrain;
import dev.baton.v1.WorkerHeartbeat;
import io.grpc.Context;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Serves {@link WorkerTool}s to Baton's agents over {@code ToolWorkerService.ServeTools}: one
 * stream to each target (a worker connects to every replica), no inbound port.
 *
 * <pre>{@code
 * ToolWorker worker = ToolWorker.builder()
 *     .targets("baton-1:8800", "baton-2:8800")
 *     .credentials(BatonCredentials.apiKey(System.getenv("BATON_WORKER_KEY")))  // role tool_worker
 *     .name("orders")
 *     .maxConcurrentCalls(16)
 *     .tool(checkOrder)
 *     .build();
 * worker.start();
 * Runtime.getRuntime().addShutdownHook(new Thread(worker::stop));  // graceful drain
 * worker.done().join();
 * }</pre>
 *
 * Each stream declares the tools, then runs the calls the server sends (sync handlers on the
 * worker's executor, async ones as futures), answers each with a result or an error, and
 * cancels a call's handler when the server cancels it. Heartbeats go both ways; a server silent
 * for three heartbeat intervals is presumed gone. A stream that breaks (UNAVAILABLE, a server
 * shutting down, a lost connection, ...) is opened again after a jittered exponential backoff
 * (the {@link ReconnectingBuilder} settings) and declares again. A refusal (INVALID_ARGUMENT for a
 * bad declaration, FAILED_PRECONDITION for a name the server loads itself, PERMISSION_DENIED or
 * UNAUTHENTICATED for the key) is not retried: it ends the worker, and {@link #done()} and {@link
 * #awaitAccepted} fail with that {@code StatusRuntimeException} (decode it with {@link
 * BatonErrors}). {@link #stop()} drains: the server sends no new calls, running handlers finish
 * within the drain grace (then they are cancelled), the worker half-closes and the server ends
 * the stream.
 */
public final class ToolWorker implements AutoCloseable {
  private static final System.Logger LOG = System.getLogger(ToolWorker.class.getName());
  private static final Duration DEFAULT_HEARTBEAT = Duration.ofSeconds(15);
  private static final int MISSED_HEARTBEATS = 3;
  private static final Duration CLOSE_WAIT = Duration.ofSeconds(5);
  private static final AtomicInteger THREAD_IDS = new AtomicInteger();

  private final Map<String, WorkerTool> tools;
  private final WorkerDeclaration declaration;
  private final Duration drainGrace;
  private final ReconnectPolicy policy;
  private final ExecutorService executor;
  private final boolean ownsExecutor;
  private final ScheduledExecutorService scheduler;
  private final List<Link> links = new ArrayList<>();
  private final List<BatonClient> ownedClients;
  private final CompletableFuture<Void> done = new CompletableFuture<>();
  private volatile boolean started;
  private volatile boolean stopping;

  private ToolWorker(Builder b) {
    this.tools = Map.copyOf(b.tools);
    this.drainGrace = b.drainGrace;
    this.policy = b.policy();
    WorkerDeclaration.Builder d =
        WorkerDeclaration.newBuilder().setWorkerName(b.name).setMaxConcurrentCalls(b.maxConcurrentCalls);
    b.tools.values().forEach(t -> d.addTools(t.declaration()));
    this.declaration = d.build();
    this.ownsExecutor = b.executor == null;
    this.executor = b.executor != null ? b.executor : Executors.newCachedThreadPool(daemon("baton-tool-"));
    this.scheduler = Executors.newSingleThreadScheduledExecutor(daemon("baton-worker-"));
    this.ownedClients = new ArrayList<>();
    Map<String, BatonClient> clients = new LinkedHashMap<>(b.clients);
    for (String target : b.targets) {
      BatonClient.Builder cb = BatonClient.builder(target);
      if (b.credentials != null) {
        cb.credentials(b.credentials);
      }
      if (b.plaintext) {
        cb.plaintext();
      }
      if (b.caPem != null) {
        cb.tlsCa(b.caPem);
      }
      BatonClient client = cb.build();
      ownedClients.add(client);
      clients.put(target, client);
    }
    clients.forEach((target, client) -> links.add(new Link(target, client)));
  }

  /** Configures a worker; give targets (or clients) and at least one tool. */
  public static Builder builder() {
    return new Builder();
  }

  /** Opens a stream to every target; returns at once. */
  public synchronized void start() {
    if (started) {
      throw new IllegalStateException("a ToolWorker starts once");
    }
    started = true;
    links.forEach(Link::connect);
  }

  /**
   * Waits until every target has accepted the declaration at least once. Throws the refusal
   * ({@code StatusRuntimeException}) or the give-up error when the worker ended first, {@link
   * TimeoutException} after {@code timeout}.
   */
  public void awaitAccepted(Duration timeout) throws InterruptedException, TimeoutException {
    CompletableFuture<?>[] accepted = links.stream().map(l -> l.firstAccepted).toArray(CompletableFuture[]::new);
    try {
      CompletableFuture.anyOf(CompletableFuture.allOf(accepted), done).get(timeout.toNanos(), TimeUnit.NANOSECONDS);
    } catch (ExecutionException e) {
      throw asRuntime(e.getCause());
    }
    if (!CompletableFuture.allOf(accepted).isDone()) {
      throw new IllegalStateException("the worker stopped before every target accepted it");
    }
  }

  /**
   * Completes when every stream has ended: normally after {@link #stop()}, exceptionally with the
   * refusal or give-up error that ended the worker.
   */
  public CompletableFuture<Void> done() {
    return done.copy();
  }

  /** Target -> the worker id the server gave its current (or last) stream. */
  public Map<String, String> workerIds() {
    Map<String, String> ids = new LinkedHashMap<>();
    links.forEach(l -> ids.put(l.target, l.workerId));
    return ids;
  }

  /** Target -> streams accepted so far (1 + successful reconnects). */
  public Map<String, Integer> connections() {
    Map<String, Integer> n = new LinkedHashMap<>();
    links.forEach(l -> n.put(l.target, l.connections.get()));
    return n;
  }

  /** {@link #stop(Duration)} with the builder's drain grace. */
  public void stop() {
    stop(drainGrace);
  }

  /**
   * Graceful drain of every stream (in parallel): {@code drain}, running handlers finish within
   * {@code grace} (the rest are cancelled), half-close, the server ends the stream. Blocks until
   * then; later calls return at once.
   */
  public void stop(Duration grace) {
    synchronized (this) {
      if (stopping) {
        done.exceptionally(t -> null).join();
        return;
      }
      stopping = true;
    }
    List<CompletableFuture<Void>> drains = new ArrayList<>();
    for (Link link : links) {
      CompletableFuture<Void> f = new CompletableFuture<>();
      Thread t = new Thread(() -> {
        try {
          link.drain(grace);
        } finally {
          f.complete(null);
        }
      }, "baton-drain-" + link.target);
      t.setDaemon(true);
      t.start();
      drains.add(f);
    }
    CompletableFuture.allOf(drains.toArray(CompletableFuture[]::new)).join();
    shutDown();
    done.complete(null);
  }

  @Override
  public void close() {
    stop();
  }

  private void shutDown() {
    links.forEach(Link::abort);
    scheduler.shutdownNow();
    if (ownsExecutor) {
      executor.shutdownNow();
    }
    ownedClients.forEach(BatonClient::close);
  }

  /** A stream ended for good with {@code t} (a refusal or the give-up): end the worker. */
  private void linkFailed(Link link, Throwable t) {
    synchronized (this) {
      if (stopping) {
        return;
      }
      stopping = true;
    }
    LOG.log(System.Logger.Level.ERROR, "tool worker: " + link.target + " ended the worker: " + t);
    // Not on this gRPC callback thread: closing the channels waits for their calls to end.
    Thread cleanup =
        new Thread(
            () -> {
              try {
                shutDown();
              } finally {
                done.completeExceptionally(t);
              }
            },
            "baton-worker-failed");
    cleanup.setDaemon(true);
    cleanup.start();
  }

  private static RuntimeException asRuntime(Throwable t) {
    return t instanceof RuntimeException r ? r : new CompletionException(t);
  }

  private static java.util.concurrent.ThreadFactory daemon(String prefix) {
    return r -> {
      Thread t = new Thread(r, prefix + THREAD_IDS.incrementAndGet());
      t.setDaemon(true);
      return t;
    };
  }

  /** The wire form of a handler's outcome. */
  static ToolCallResult resultMessage(String callId, ToolResult result, Throwable error) {
    if (error instanceof CompletionException && error.getCause() != null) {
      error = error.getCause();
    }
    if (error != null) {
      String message = error.getMessage();
      return ToolCallResult.newBuilder()
          .setCallId(callId)
          .setError(message == null || message.isBlank() ? error.getClass().getSimpleName() : message)
          .build();
    }
    ToolCallResult.Builder r = ToolCallResult.newBuilder().setCallId(callId);
    if (result == null) {
      result = ToolResult.of(null);
    }
    try {
      r.setData(JsonValues.toValue(result.data()));
    } catch (JsonValues.JsonException e) {
      return ToolCallResult.newBuilder()
          .setCallId(callId)
          .setError("the tool returned data that is not JSON: " + e.getMessage())
          .build();
    }
    return r.putAllControl(result.control()).build();
  }

  // ------------------------------------------------------------------ one target

  /** The stream to one target, opened again after each break. */
  private final class Link extends Reconnects {
    final String target;
    final ToolWorkerServiceGrpc.ToolWorkerServiceStub stub;
    final CompletableFuture<Void> firstAccepted = new CompletableFuture<>();
    final AtomicInteger connections = new AtomicInteger();
    volatile String workerId = "";
    volatile Stream stream;

    Link(String target, BatonClient client) {
      super(client.channel(), scheduler, policy, "gave up serving tools on " + target);
      this.target = target;
      this.stub = ToolWorkerServiceGrpc.newStub(client.interceptedChannel());
    }

    @Override
    void connect() {
      Context.CancellableContext ctx = open();
      if (ctx == null) {
        return;
      }
      Stream s = new Stream(ctx);
      stream = s;
      try {
        ctx.run(() -> s.opened(stub.serveTools(s)));
        s.send(ServeToolsRequest.newBuilder().setDeclare(declaration).build());
      } catch (RuntimeException e) {
        s.onError(e);
      }
    }

    @Override
    void reconnecting(Status status, int attempt, Duration delay) {
      LOG.log(
          System.Logger.Level.INFO,
          "tool worker " + target + ": " + status.getCode() + " " + status.getDescription()
              + "; declaring again in " + delay.toMillis() + " ms (attempt " + attempt + ")");
    }

    @Override
    void failed(Throwable t) {
      linkFailed(this, t);
    }

    void drain(Duration grace) {
      finish(); // no reconnect after this stream
      Stream s = stream;
      if (s == null || s.ended.isDone()) {
        return;
      }
      if (!s.accepted) {
        abort();
        return;
      }
      s.draining = true;
      s.send(ServeToolsRequest.newBuilder().setDrain(WorkerDrain.getDefaultInstance()).build());
      // Calls the server sent before it read the drain may still arrive: wait for those too.
      long deadline = System.nanoTime() + grace.toNanos();
      try {
        while (!s.running.isEmpty()) {
          long left = deadline - System.nanoTime();
          if (left <= 0) {
            s.cancelAll("the worker is stopping");
            break;
          }
          try {
            CompletableFuture.allOf(s.running.values().toArray(CompletableFuture[]::new))
                .get(left, TimeUnit.NANOSECONDS);
          } catch (TimeoutException | ExecutionException e) {
            // checked again above
          }
        }
      } catch (InterruptedException e) {
        s.cancelAll("the worker is stopping");
        Thread.currentThread().interrupt();
      }
      s.halfClose();
      try {
        s.ended.get(CLOSE_WAIT.toNanos(), TimeUnit.NANOSECONDS);
      } catch (TimeoutException | ExecutionException e) {
        abort();
      } catch (InterruptedException e) {
        abort();
        Thread.currentThread().interrupt();
      }
    }

    /** One ServeTools call. */
    private final class Stream extends Call<ServeToolsResponse> {
      final CompletableFuture<Void> ended = new CompletableFuture<>();
      /** call id -> the call and the future that completes once its result is sent. */
      final Map<String, CompletableFuture<?>> running = new ConcurrentHashMap<>();
      final Map<String, WorkerCall> calls = new ConcurrentHashMap<>();
      private StreamObserver<ServeToolsRequest> requests; // guarded by this
      private boolean halfClosed; // guarded by this
      volatile boolean accepted;
      volatile boolean draining;
      volatile long lastHeard = System.nanoTime();
      private ScheduledFuture<?> heartbeats;

      Stream(Context.CancellableContext ctx) {
        super(ctx, "the server ended the tool worker stream");
      }

      synchronized void opened(StreamObserver<ServeToolsRequest> requests) {
        this.requests = requests;
      }

      synchronized void send(ServeToolsRequest message) {
        if (requests == null || halfClosed || ended.isDone()) {
          return;
        }
        try {
          requests.onNext(message);
        } catch (RuntimeException e) {
          // the call is over; its observer reports why
        }
      }

      synchronized void halfClose() {
        if (requests != null && !halfClosed && !ended.isDone()) {
          halfClosed = true;
          try {
            requests.onCompleted();
          } catch (RuntimeException e) {
            // the call is over
          }
        }
      }

      @Override
      public void onNext(ServeToolsResponse response) {
        lastHeard = System.nanoTime();
        switch (response.getKindCase()) {
          case ACCEPTED -> accepted(response);
          case CALL -> startCall(response.getCall());
          case CANCEL -> {
            WorkerCall call = calls.remove(response.getCancel().getCallId());
            running.remove(response.getCancel().getCallId());
            if (call != null) {
              LOG.log(System.Logger.Level.INFO, "tool worker " + target + ": " + call + " cancelled: " + response.getCancel().getReason());
              call.cancel(response.getCancel().getReason());
            }
          }
          default -> {} // heartbeat: lastHeard is all it is for
        }
      }

      private void accepted(ServeToolsResponse response) {
        attempt = 0;
        accepted = true;
        workerId = response.getAccepted().getWorkerId();
        connections.incrementAndGet();
        LOG.log(System.Logger.Level.INFO, "tool worker " + target + ": accepted as " + workerId);
        Duration interval = DEFAULT_HEARTBEAT;
        if (response.getAccepted().hasHeartbeatInterval()) {
          com.google.protobuf.Duration d = response.getAccepted().getHeartbeatInterval();
          Duration given = Duration.ofSeconds(d.getSeconds(), d.getNanos());
          interval = given.isNegative() || given.isZero() ? DEFAULT_HEARTBEAT : given;
        }
        long silence = interval.toNanos() * MISSED_HEARTBEATS;
        try {
          heartbeats =
              scheduler.scheduleAtFixedRate(
                  () -> {
                    if (System.nanoTime() - lastHeard > silence) {
                      interrupt(
                          Status.UNAVAILABLE.withDescription(
                              "no message from the server for " + Duration.ofNanos(silence).toMillis() + " ms"));
                    } else if (!draining) {
                      Instant now = Instant.now();
                      send(
                          ServeToolsRequest.newBuilder()
                              .setHeartbeat(
                                  WorkerHeartbeat.newBuilder()
                                      .setTime(
                                          com.google.protobuf.Timestamp.newBuilder()
                                              .setSeconds(now.getEpochSecond())
                                              .setNanos(now.getNano())))
                              .build());
                    }
                  },
                  interval.toNanos(),
                  interval.toNanos(),
                  TimeUnit.NANOSECONDS);
        } catch (java.util.concurrent.RejectedExecutionException e) {
          // the worker is shutting down
        }
        firstAccepted.complete(null);
      }

      private void startCall(ToolCallRequest request) {
        WorkerCall call = new WorkerCall(request, workerId, target);
        String id = request.getCallId();
        WorkerTool tool = tools.get(request.getTool());
        if (tool == null) {
          send(result(ToolCallResult.newBuilder().setCallId(id).setError("this worker does not serve " + request.getTool()).build()));
          return;
        }
        calls.put(id, call);
        CompletableFuture<ToolResult> outcome;
        try {
          outcome = tool.invoke(call, executor);
        } catch (RuntimeException e) {
          outcome = CompletableFuture.failedFuture(e);
        }
        CompletableFuture<?> sent =
            outcome.handle(
                (result, error) -> {
                  if (calls.remove(id, call)) { // not cancelled meanwhile
                    send(result(resultMessage(id, result, error)));
                  }
                  running.remove(id);
                  return null;
                });
        if (calls.containsKey(id)) {
          running.put(id, sent);
        }
      }

      private ServeToolsRequest result(ToolCallResult result) {
        return ServeToolsRequest.newBuilder().setResult(result).build();
      }

      void cancelAll(String reason) {
        for (String id : List.copyOf(calls.keySet())) {
          WorkerCall call = calls.remove(id);
          running.remove(id);
          if (call != null) {
            call.cancel(reason);
          }
        }
      }

      @Override
      void closed() {
        if (heartbeats != null) {
          heartbeats.cancel(false);
        }
        cancelAll("the stream to the server closed");
        ended.complete(null);
      }
    }
  }

  // ------------------------------------------------------------------ builder

  /**
   * Settings of a {@link ToolWorker}. Reconnect backoff as for follow (250 ms doubling to 10 s,
   * 50% jitter, unlimited attempts); retried codes: UNAVAILABLE, CANCELLED (a server shutting
   * down), DEADLINE_EXCEEDED, ABORTED, RESOURCE_EXHAUSTED, INTERNAL, UNKNOWN.
   */
  public static final class Builder extends ReconnectingBuilder<Builder> {
    private final List<String> targets = new ArrayList<>();
    private final Map<String, BatonClient> clients = new LinkedHashMap<>();
    private final Map<String, WorkerTool> tools = new LinkedHashMap<>();
    private BatonCredentials credentials;
    private boolean plaintext;
    private byte[] caPem;
    private String name = "";
    private int maxConcurrentCalls = 10;
    private Duration drainGrace = Duration.ofSeconds(10);
    private ExecutorService executor;

    private Builder() {
      retryOn(
          Status.Code.UNAVAILABLE,
          Status.Code.CANCELLED,
          Status.Code.DEADLINE_EXCEEDED,
          Status.Code.ABORTED,
          Status.Code.RESOURCE_EXHAUSTED,
          Status.Code.INTERNAL,
          Status.Code.UNKNOWN);
    }

    @Override
    Builder self() {
      return this;
    }

    /** Server addresses ({@code host:port}), one per replica: a stream to each. */
    public Builder targets(String... targets) {
      for (String t : targets) {
        this.targets.add(Objects.requireNonNull(t, "target"));
      }
      return this;
    }

    /**
     * A client you configured (another transport, an in-process channel, other options) for one
     * more target; the worker uses its channel and credentials and does not close it.
     */
    public Builder client(String target, BatonClient client) {
      clients.put(Objects.requireNonNull(target, "target"), Objects.requireNonNull(client, "client"));
      return this;
    }

    /** The credentials of the clients made for {@link #targets}: an API key with role tool_worker. */
    public Builder credentials(BatonCredentials credentials) {
      this.credentials = credentials;
      return this;
    }

    /** No TLS for the {@link #targets} (a local or development server). */
    public Builder plaintext() {
      this.plaintext = true;
      return this;
    }

    /** TLS trusting only the CA certificate(s) in this PEM file. */
    public Builder tlsCa(Path caPemFile) {
      try {
        return tlsCa(java.nio.file.Files.readAllBytes(caPemFile));
      } catch (java.io.IOException e) {
        throw new java.io.UncheckedIOException("cannot read " + caPemFile, e);
      }
    }

    /** TLS trusting only the CA certificate(s) in these PEM bytes. */
    public Builder tlsCa(byte[] caPem) {
      this.caPem = caPem.clone();
      this.plaintext = false;
      return this;
    }

    /** A name for the worker, shown by ListTools (the server makes it unique). */
    public Builder name(String name) {
      this.name = Objects.requireNonNull(name, "name");
      return this;
    }

    /** The most calls the server sends at once on each stream, 1 to 1000 (default 10). */
    public Builder maxConcurrentCalls(int n) {
      if (n < 1 || n > 1000) {
        throw new IllegalArgumentException("maxConcurrentCalls must be between 1 and 1000");
      }
      this.maxConcurrentCalls = n;
      return this;
    }

    /** How long {@link ToolWorker#stop()} lets running handlers finish (default 10 s). */
    public Builder drainGrace(Duration grace) {
      if (grace.isNegative()) {
        throw new IllegalArgumentException("drainGrace must not be negative");
      }
      this.drainGrace = grace;
      return this;
    }

    /** Where handlers run (default: a cached pool of daemon threads, shut down on stop). */
    public Builder executor(ExecutorService executor) {
      this.executor = Objects.requireNonNull(executor, "executor");
      return this;
    }

    public Builder tool(WorkerTool... more) {
      for (WorkerTool t : more) {
        if (tools.putIfAbsent(t.name(), t) != null) {
          throw new IllegalArgumentException("two tools are named " + t.name());
        }
      }
      return this;
    }

    public ToolWorker build() {
      if (targets.isEmpty() && clients.isEmpty()) {
        throw new IllegalStateException("give at least one target");
      }
      if (tools.isEmpty()) {
        throw new IllegalStateException("give at least one tool");
      }
      List<String> all = new ArrayList<>(targets);
      all.addAll(clients.keySet());
      if (all.stream().distinct().count() != all.size()) {
        throw new IllegalStateException("targets must be distinct");
      }
      return new ToolWorker(this);
    }
  }
}
