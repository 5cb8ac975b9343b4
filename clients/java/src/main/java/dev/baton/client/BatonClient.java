package dev.baton.client;

import dev.baton.v1.AgentServiceGrpc;
import dev.baton.v1.AuthServiceGrpc;
import dev.baton.v1.CannedResponseServiceGrpc;
import dev.baton.v1.CustomerServiceGrpc;
import dev.baton.v1.EventServiceGrpc;
import dev.baton.v1.GuidelineServiceGrpc;
import dev.baton.v1.HandoffServiceGrpc;
import dev.baton.v1.SessionServiceGrpc;
import dev.baton.v1.ToolServiceGrpc;
import io.grpc.Channel;
import io.grpc.ChannelCredentials;
import io.grpc.ClientInterceptor;
import io.grpc.ClientInterceptors;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.MethodDescriptor;
import io.grpc.TlsChannelCredentials;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;

/**
 * Entry point of the Baton Java client: one {@link ManagedChannel}, the generated stubs of every
 * service (blocking, async and future flavours), {@link #follow} to tail a session's event log and
 * {@link #watchHandoffs} to watch the operator inbox, both with automatic reconnects.
 *
 * <p>Thread-safe; create one per server and credential and share it. {@link #close()} shuts the
 * channel down (when the client created it) and stops every open subscription's reconnects.
 *
 * <pre>{@code
 * try (BatonClient baton = BatonClient.builder("baton.example.com:443")
 *     .credentials(BatonCredentials.apiKey(System.getenv("BATON_API_KEY")))
 *     .build()) {
 *   Session s = baton.sessions().withDeadlineAfter(5, TimeUnit.SECONDS)
 *       .getSession(GetSessionRequest.newBuilder().setSessionId(id).build()).getSession();
 * }
 * }</pre>
 *
 * What {@link #builder} sets up: TLS (system roots, or a CA from a PEM), per-call credentials,
 * keepalive (ping after 30 s without reads, 10 s to answer, also without calls: the server allows
 * pings every 10 s), retries on UNAVAILABLE for calls safe to repeat (grpc-java's service-config
 * retry policy, see {@link #retryServiceConfig}), and an idempotency key on every {@code
 * CreateEvent} that has none.
 */
public final class BatonClient implements AutoCloseable {
  /** Keepalive defaults, matched to the server's policy (client pings allowed every 10 s). */
  public static final Duration DEFAULT_KEEPALIVE_TIME = Duration.ofSeconds(30);

  public static final Duration DEFAULT_KEEPALIVE_TIMEOUT = Duration.ofSeconds(10);

  private static final AtomicInteger SCHEDULER_IDS = new AtomicInteger();

  private final ManagedChannel managed;
  private final Channel channel;
  private final boolean ownsChannel;
  private final ScheduledExecutorService scheduler;

  private BatonClient(ManagedChannel managed, boolean ownsChannel, List<ClientInterceptor> interceptors) {
    this.managed = Objects.requireNonNull(managed, "channel");
    this.channel = ClientInterceptors.intercept(managed, interceptors);
    this.ownsChannel = ownsChannel;
    this.scheduler =
        Executors.newSingleThreadScheduledExecutor(
            r -> {
              Thread t = new Thread(r, "baton-reconnect-" + SCHEDULER_IDS.incrementAndGet());
              t.setDaemon(true);
              return t;
            });
  }

  /**
   * Connects without TLS and without credentials to {@code target} ({@code host:port}, or any
   * gRPC target such as {@code dns:///baton.internal:8800}) — for a development server
   * ({@code baton serve --dev}). Keepalive, retries and idempotency keys as with {@link #builder}.
   */
  public static BatonClient connect(String target) {
    return builder(target).plaintext().build();
  }

  /** Configures a client for {@code target}; TLS with the system's roots unless told otherwise. */
  public static Builder builder(String target) {
    return new Builder(Objects.requireNonNull(target, "target"), null);
  }

  /**
   * Configures a client on a channel builder you made (another transport, an in-process
   * channel, extra options); {@link Builder} applies its keepalive and retry settings to it, while
   * TLS settings do not apply (the builder has its own).
   */
  public static Builder builder(ManagedChannelBuilder<?> channelBuilder) {
    return new Builder(null, Objects.requireNonNull(channelBuilder, "channelBuilder"));
  }

  /**
   * Wraps a channel you configured yourself (TLS, interceptors, ...). Only the idempotency key
   * interceptor is added: no credentials, and keepalive and retries are the channel's own (see
   * {@link #retryServiceConfig()} to enable them).
   */
  public static BatonClient wrap(ManagedChannel channel, boolean closeChannelOnClose) {
    return new BatonClient(channel, closeChannelOnClose, List.of(new ClientInterceptorsImpl.IdempotencyKeys()));
  }

  /** The underlying channel, without this client's interceptors (credentials, idempotency keys). */
  public ManagedChannel channel() {
    return managed;
  }

  /** The channel with this client's interceptors: build any other stub on it. */
  public Channel interceptedChannel() {
    return channel;
  }

  // ------------------------------------------------------------------ retry policy

  /**
   * The unary methods retried on UNAVAILABLE: reads, {@code IssueCustomerToken} (another token is
   * harmless) and {@code CreateEvent} (safe because every request carries an idempotency key).
   * Creates, updates, deletes and handoff controls are not retried: a lost answer does not mean
   * the change did not happen.
   */
  public static List<MethodDescriptor<?, ?>> retriedMethods() {
    return List.of(
        AgentServiceGrpc.getGetAgentMethod(),
        AgentServiceGrpc.getListAgentsMethod(),
        CustomerServiceGrpc.getGetCustomerMethod(),
        CustomerServiceGrpc.getListCustomersMethod(),
        SessionServiceGrpc.getGetSessionMethod(),
        SessionServiceGrpc.getListSessionsMethod(),
        EventServiceGrpc.getCreateEventMethod(),
        GuidelineServiceGrpc.getGetGuidelineMethod(),
        GuidelineServiceGrpc.getListGuidelinesMethod(),
        CannedResponseServiceGrpc.getGetCannedResponseMethod(),
        CannedResponseServiceGrpc.getListCannedResponsesMethod(),
        ToolServiceGrpc.getListToolsMethod(),
        HandoffServiceGrpc.getGetHandoffMethod(),
        HandoffServiceGrpc.getListHandoffsMethod(),
        HandoffServiceGrpc.getGetHandoffStatsMethod(),
        AuthServiceGrpc.getIssueCustomerTokenMethod());
  }

  /**
   * The gRPC service config {@link #builder} installs ({@code defaultServiceConfig} plus {@code
   * enableRetry}): up to {@code maxAttempts} attempts of each {@link #retriedMethods()} call on
   * UNAVAILABLE, backoff 0.25 s doubling to 5 s (grpc-java draws each wait uniformly below
   * that), all within the call's deadline. grpc-java also honours a server's
   * {@code grpc-retry-pushback-ms}.
   */
  public static Map<String, ?> retryServiceConfig(int maxAttempts) {
    List<Map<String, Object>> names = new ArrayList<>();
    for (MethodDescriptor<?, ?> m : retriedMethods()) {
      names.add(Map.of("service", m.getServiceName(), "method", m.getBareMethodName()));
    }
    Map<String, Object> policy = new LinkedHashMap<>();
    policy.put("maxAttempts", (double) maxAttempts);
    policy.put("initialBackoff", "0.25s");
    policy.put("maxBackoff", "5s");
    policy.put("backoffMultiplier", 2.0);
    policy.put("retryableStatusCodes", List.of("UNAVAILABLE"));
    return Map.of("methodConfig", List.of(Map.of("name", names, "retryPolicy", policy)));
  }

  /** {@link #retryServiceConfig(int)} with 5 attempts. */
  public static Map<String, ?> retryServiceConfig() {
    return retryServiceConfig(5);
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

  public GuidelineServiceGrpc.GuidelineServiceBlockingStub guidelines() {
    return GuidelineServiceGrpc.newBlockingStub(channel);
  }

  public CannedResponseServiceGrpc.CannedResponseServiceBlockingStub cannedResponses() {
    return CannedResponseServiceGrpc.newBlockingStub(channel);
  }

  public ToolServiceGrpc.ToolServiceBlockingStub tools() {
    return ToolServiceGrpc.newBlockingStub(channel);
  }

  /** Operator controls: claim, offer, respond, release, transfer, list, stats. */
  public HandoffServiceGrpc.HandoffServiceBlockingStub handoffs() {
    return HandoffServiceGrpc.newBlockingStub(channel);
  }

  public AuthServiceGrpc.AuthServiceBlockingStub auth() {
    return AuthServiceGrpc.newBlockingStub(channel);
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

  public HandoffServiceGrpc.HandoffServiceStub handoffsAsync() {
    return HandoffServiceGrpc.newStub(channel);
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

  public HandoffServiceGrpc.HandoffServiceFutureStub handoffsFuture() {
    return HandoffServiceGrpc.newFutureStub(channel);
  }

  /** Any other stub, on the intercepted channel: {@code baton.stub(FooServiceGrpc::newBlockingStub)}. */
  public <S> S stub(Function<Channel, S> factory) {
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
            EventServiceGrpc.newStub(channel), managed, scheduler, sessionId, fromOffset, options, listener);
    f.start();
    return f;
  }

  // ------------------------------------------------------------------ operator inbox

  /**
   * Watches the operator inbox as a blocking iterator: the open handoffs (type OPEN; or the
   * changes after {@link WatchOptions#afterPosition()}), then every change live, each exactly once
   * and in position order, resuming after the last delivered position across reconnects and
   * server restarts. Close it when done.
   */
  public HandoffStream watchHandoffs(WatchOptions options) {
    HandoffStream stream = new HandoffStream(options.bufferSize());
    stream.attach(watchHandoffs(options, stream.listener()));
    return stream;
  }

  /**
   * Watches the operator inbox, calling {@code listener} for each change (one at a time, on gRPC
   * threads). Returns at once; {@link HandoffWatch#close()} stops it.
   */
  public HandoffWatch watchHandoffs(WatchOptions options, HandoffListener listener) {
    HandoffWatcher w =
        new HandoffWatcher(HandoffServiceGrpc.newStub(channel), managed, scheduler, options, listener);
    w.start();
    return w;
  }

  /** Shuts down the channel (if this client created it) and stops pending reconnects. */
  @Override
  public void close() {
    scheduler.shutdownNow();
    if (!ownsChannel) {
      return;
    }
    managed.shutdown();
    try {
      if (!managed.awaitTermination(5, TimeUnit.SECONDS)) {
        managed.shutdownNow();
        managed.awaitTermination(5, TimeUnit.SECONDS);
      }
    } catch (InterruptedException e) {
      managed.shutdownNow();
      Thread.currentThread().interrupt();
    }
  }

  // ------------------------------------------------------------------ builder

  /** Options of a {@link BatonClient}; see {@link BatonClient#builder(String)}. */
  public static final class Builder {
    private final String target;
    private final ManagedChannelBuilder<?> channelBuilder;
    private boolean plaintext;
    private byte[] caPem;
    private byte[] clientCertPem;
    private byte[] clientKeyPem;
    private String authority;
    private BatonCredentials credentials;
    private Duration keepAliveTime = DEFAULT_KEEPALIVE_TIME;
    private Duration keepAliveTimeout = DEFAULT_KEEPALIVE_TIMEOUT;
    private boolean keepAliveWithoutCalls = true;
    private boolean keepAlive = true;
    private int retryAttempts = 5;
    private boolean idempotencyKeys = true;
    private boolean waitForReady;
    private String userAgent;
    private final List<ClientInterceptor> interceptors = new ArrayList<>();

    private Builder(String target, ManagedChannelBuilder<?> channelBuilder) {
      this.target = target;
      this.channelBuilder = channelBuilder;
    }

    /** No TLS (a local or development server). */
    public Builder plaintext() {
      this.plaintext = true;
      return this;
    }

    /** TLS trusting only the CA certificate(s) in this PEM file (e.g. a private CA). */
    public Builder tlsCa(Path caPemFile) {
      return tlsCa(read(caPemFile));
    }

    /** TLS trusting only the CA certificate(s) in these PEM bytes (checked here: at least one). */
    public Builder tlsCa(byte[] caPem) {
      try {
        if (CertificateFactory.getInstance("X.509").generateCertificates(new ByteArrayInputStream(caPem)).isEmpty()) {
          throw new IllegalArgumentException("no certificate in the CA PEM");
        }
      } catch (CertificateException e) {
        throw new IllegalArgumentException("unreadable CA PEM: " + e.getMessage(), e);
      }
      this.caPem = caPem.clone();
      this.plaintext = false;
      return this;
    }

    /** Mutual TLS: present this client certificate chain and PKCS#8 key (PEM files). */
    public Builder tlsClientCertificate(Path certPemFile, Path keyPemFile) {
      this.clientCertPem = read(certPemFile);
      this.clientKeyPem = read(keyPemFile);
      this.plaintext = false;
      return this;
    }

    /** The name the server's certificate is checked against, when not the target's host. */
    public Builder overrideAuthority(String authority) {
      this.authority = authority;
      return this;
    }

    /** Credentials sent with every call (API key, token, supplier or provider). */
    public Builder credentials(BatonCredentials credentials) {
      this.credentials = credentials;
      return this;
    }

    /** Ping after {@code time} without reads; give up on the connection {@code timeout} later. */
    public Builder keepAlive(Duration time, Duration timeout, boolean withoutCalls) {
      if (time.compareTo(Duration.ofSeconds(10)) < 0) {
        // The server answers pings more frequent than every 10 s with GOAWAY (too_many_pings).
        throw new IllegalArgumentException("keepalive time below 10 s is refused by the server");
      }
      this.keepAliveTime = time;
      this.keepAliveTimeout = Objects.requireNonNull(timeout, "timeout");
      this.keepAliveWithoutCalls = withoutCalls;
      this.keepAlive = true;
      return this;
    }

    /** No client keepalive pings (the server still pings every 30 s). */
    public Builder noKeepAlive() {
      this.keepAlive = false;
      return this;
    }

    /** Attempts per retried call (see {@link #retryServiceConfig}), 1 = no retries; default 5. */
    public Builder retryAttempts(int attempts) {
      if (attempts < 1) {
        throw new IllegalArgumentException("retryAttempts must be >= 1");
      }
      this.retryAttempts = attempts;
      return this;
    }

    /**
     * Whether {@code CreateEvent} without an idempotency key gets a random one (default true).
     * Turning it off also stops retrying {@code CreateEvent}.
     */
    public Builder idempotencyKeys(boolean enabled) {
      this.idempotencyKeys = enabled;
      return this;
    }

    /**
     * Unary calls wait for a ready connection, up to their deadline, instead of failing with
     * UNAVAILABLE at once while the channel is (re)connecting — e.g. while the server restarts.
     * Off by default (gRPC's fail-fast); only turn it on when every call has a deadline.
     * Streams (follow, watchHandoffs) are unaffected: they reconnect on their own.
     */
    public Builder waitForReady(boolean enabled) {
      this.waitForReady = enabled;
      return this;
    }

    public Builder userAgent(String userAgent) {
      this.userAgent = userAgent;
      return this;
    }

    /** Extra interceptors, run before the client's own (first added runs first). */
    public Builder intercept(ClientInterceptor... more) {
      interceptors.addAll(List.of(more));
      return this;
    }

    Duration keepAliveTime() {
      return keepAlive ? keepAliveTime : null;
    }

    Duration keepAliveTimeout() {
      return keepAliveTimeout;
    }

    boolean keepAliveWithoutCalls() {
      return keepAliveWithoutCalls;
    }

    ChannelCredentials channelCredentials() {
      if (plaintext) {
        return InsecureChannelCredentials.create();
      }
      TlsChannelCredentials.Builder tls = TlsChannelCredentials.newBuilder();
      try {
        if (caPem != null) {
          tls.trustManager(new ByteArrayInputStream(caPem));
        }
        if (clientCertPem != null) {
          tls.keyManager(new ByteArrayInputStream(clientCertPem), new ByteArrayInputStream(clientKeyPem));
        }
      } catch (IOException e) {
        throw new IllegalArgumentException("unreadable PEM: " + e.getMessage(), e);
      }
      return tls.build();
    }

    /** The channel builder with this client's transport settings applied. */
    ManagedChannelBuilder<?> configure() {
      ManagedChannelBuilder<?> b =
          channelBuilder != null ? channelBuilder : Grpc.newChannelBuilder(target, channelCredentials());
      if (authority != null) {
        b.overrideAuthority(authority);
      }
      if (keepAlive) {
        try {
          b.keepAliveTime(keepAliveTime.toNanos(), TimeUnit.NANOSECONDS)
              .keepAliveTimeout(keepAliveTimeout.toNanos(), TimeUnit.NANOSECONDS)
              .keepAliveWithoutCalls(keepAliveWithoutCalls);
        } catch (UnsupportedOperationException e) {
          // a transport without keepalive (in-process): nothing to detect
        }
      }
      if (retryAttempts > 1) {
        b.defaultServiceConfig(retryConfig()).enableRetry().maxRetryAttempts(Math.max(5, retryAttempts));
      } else {
        b.disableRetry();
      }
      if (userAgent != null) {
        b.userAgent(userAgent);
      }
      return b;
    }

    Map<String, ?> retryConfig() {
      if (idempotencyKeys) {
        return retryServiceConfig(retryAttempts);
      }
      // Without automatic keys a retried CreateEvent could append twice: leave it out.
      @SuppressWarnings("unchecked")
      Map<String, Object> methodConfig =
          new LinkedHashMap<>(((List<Map<String, Object>>) retryServiceConfig(retryAttempts).get("methodConfig")).get(0));
      @SuppressWarnings("unchecked")
      List<Map<String, Object>> names = new ArrayList<>((List<Map<String, Object>>) methodConfig.get("name"));
      names.removeIf(n -> EventServiceGrpc.getCreateEventMethod().getBareMethodName().equals(n.get("method")));
      methodConfig.put("name", names);
      return Map.of("methodConfig", List.of(methodConfig));
    }

    public BatonClient build() {
      List<ClientInterceptor> all = new ArrayList<>();
      // ClientInterceptors.intercept runs the last one first: list them innermost first.
      if (credentials != null) {
        all.add(new ClientInterceptorsImpl.Credentials(credentials));
      }
      if (idempotencyKeys) {
        all.add(new ClientInterceptorsImpl.IdempotencyKeys());
      }
      if (waitForReady) {
        all.add(new ClientInterceptorsImpl.WaitForReady());
      }
      List<ClientInterceptor> extra = new ArrayList<>(interceptors);
      java.util.Collections.reverse(extra);
      all.addAll(extra);
      return new BatonClient(configure().build(), true, all);
    }

    private static byte[] read(Path file) {
      try {
        return Files.readAllBytes(file);
      } catch (IOException e) {
        throw new UncheckedIOException("cannot read " + file, e);
      }
    }
  }
}
