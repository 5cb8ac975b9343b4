package dev.baton.client;

import dev.baton.v1.AgentServiceGrpc;
import dev.baton.v1.CustomerServiceGrpc;
import dev.baton.v1.EventServiceGrpc;
import dev.baton.v1.SessionServiceGrpc;
import io.grpc.Channel;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import java.util.Objects;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Entry point of the Baton Java client: one {@link ManagedChannel}, the generated stubs of every
 * service (blocking, async and future flavours), and {@link #follow} to tail a session's event log
 * with automatic reconnects.
 *
 * <p>Thread-safe; create one per server and share it. {@link #close()} shuts the channel down
 * (when the client created it) and stops every open follow subscription's reconnects.
 *
 * <pre>{@code
 * try (BatonClient baton = BatonClient.connect("127.0.0.1:8800")) {
 *   Session s = baton.sessions().withDeadlineAfter(5, TimeUnit.SECONDS)
 *       .getSession(GetSessionRequest.newBuilder().setSessionId(id).build()).getSession();
 * }
 * }</pre>
 */
public final class BatonClient implements AutoCloseable {
  private static final AtomicInteger SCHEDULER_IDS = new AtomicInteger();

  private final ManagedChannel channel;
  private final boolean ownsChannel;
  private final ScheduledExecutorService scheduler;

  private BatonClient(ManagedChannel channel, boolean ownsChannel) {
    this.channel = Objects.requireNonNull(channel, "channel");
    this.ownsChannel = ownsChannel;
    this.scheduler =
        Executors.newSingleThreadScheduledExecutor(
            r -> {
              Thread t = new Thread(r, "baton-follow-" + SCHEDULER_IDS.incrementAndGet());
              t.setDaemon(true);
              return t;
            });
  }

  /**
   * Connects without TLS to {@code target} ({@code host:port}, or any gRPC target string such as
   * {@code dns:///baton.internal:8800}). The channel connects lazily, on the first call.
   */
  public static BatonClient connect(String target) {
    return new BatonClient(ManagedChannelBuilder.forTarget(target).usePlaintext().build(), true);
  }

  /** Wraps a channel you configured yourself (TLS, interceptors, ...). */
  public static BatonClient wrap(ManagedChannel channel, boolean closeChannelOnClose) {
    return new BatonClient(channel, closeChannelOnClose);
  }

  public ManagedChannel channel() {
    return channel;
  }

  // ------------------------------------------------------------------ blocking stubs

  public AgentServiceGrpc.AgentServiceBlockingStub agents() {
    return AgentServiceGrpc.newBlockingStub(channel);
  }

  public CustomerServiceGrpc.CustomerServiceBlockingStub customers() {
    return CustomerServiceGrpc.newBlockingStub(channel);
  }

  public SessionServiceGrpc.SessionServiceBlockingStub sessions() {
    return SessionServiceGrpc.newBlockingStub(channel);
  }

  public EventServiceGrpc.EventServiceBlockingStub events() {
    return EventServiceGrpc.newBlockingStub(channel);
  }

  // ------------------------------------------------------------------ async (StreamObserver) stubs

  public AgentServiceGrpc.AgentServiceStub agentsAsync() {
    return AgentServiceGrpc.newStub(channel);
  }

  public CustomerServiceGrpc.CustomerServiceStub customersAsync() {
    return CustomerServiceGrpc.newStub(channel);
  }

  public SessionServiceGrpc.SessionServiceStub sessionsAsync() {
    return SessionServiceGrpc.newStub(channel);
  }

  public EventServiceGrpc.EventServiceStub eventsAsync() {
    return EventServiceGrpc.newStub(channel);
  }

  // ------------------------------------------------------------------ future (ListenableFuture) stubs

  public AgentServiceGrpc.AgentServiceFutureStub agentsFuture() {
    return AgentServiceGrpc.newFutureStub(channel);
  }

  public CustomerServiceGrpc.CustomerServiceFutureStub customersFuture() {
    return CustomerServiceGrpc.newFutureStub(channel);
  }

  public SessionServiceGrpc.SessionServiceFutureStub sessionsFuture() {
    return SessionServiceGrpc.newFutureStub(channel);
  }

  public EventServiceGrpc.EventServiceFutureStub eventsFuture() {
    return EventServiceGrpc.newFutureStub(channel);
  }

  /** Any other generated stub: {@code baton.stub(FooServiceGrpc::newBlockingStub)}. */
  public <S> S stub(java.util.function.Function<Channel, S> factory) {
    return factory.apply(channel);
  }

  // ------------------------------------------------------------------ follow

  /**
   * Follows a session's log from {@code fromOffset} as a blocking iterator: history first, then
   * live events, each exactly once and in offset order, across reconnects. Close it when done.
   */
  public EventStream follow(String sessionId, long fromOffset) {
    return follow(sessionId, fromOffset, FollowOptions.defaults());
  }

  /** {@link #follow(String, long)} with filters, backoff and buffer settings. */
  public EventStream follow(String sessionId, long fromOffset, FollowOptions options) {
    EventStream stream = new EventStream(options.bufferSize());
    stream.attach(follow(sessionId, fromOffset, options, stream.listener()));
    return stream;
  }

  /**
   * Follows a session's log from {@code fromOffset}, calling {@code listener} for each event on a
   * gRPC thread (never concurrently; a slow listener slows the stream down, it never drops
   * events). Returns at once; {@link Subscription#close()} stops it.
   */
  public Subscription follow(
      String sessionId, long fromOffset, FollowOptions options, FollowListener listener) {
    Follower f =
        new Follower(
            EventServiceGrpc.newStub(channel), channel, scheduler, sessionId, fromOffset, options, listener);
    f.start();
    return f;
  }

  /** Shuts down the channel (if this client created it) and stops pending reconnects. */
  @Override
  public void close() {
    scheduler.shutdownNow();
    if (!ownsChannel) {
      return;
    }
    channel.shutdown();
    try {
      if (!channel.awaitTermination(5, TimeUnit.SECONDS)) {
        channel.shutdownNow();
        channel.awaitTermination(5, TimeUnit.SECONDS);
      }
    } catch (InterruptedException e) {
      channel.shutdownNow();
      Thread.currentThread().interrupt();
    }
  }
}
