package dev.baton.client;

import dev.baton.v1.Agent;
import dev.baton.v1.ClaimHandoffRequest;
import dev.baton.v1.CreateAgentRequest;
import dev.baton.v1.CreateCustomerRequest;
import dev.baton.v1.CreateEventRequest;
import dev.baton.v1.CreateGuidelineRequest;
import dev.baton.v1.CreateSessionRequest;
import dev.baton.v1.Customer;
import dev.baton.v1.Event;
import dev.baton.v1.EventKind;
import dev.baton.v1.EventSource;
import dev.baton.v1.Guideline;
import dev.baton.v1.Handoff;
import dev.baton.v1.HandoffChange;
import dev.baton.v1.HandoffChangeType;
import dev.baton.v1.HandoffOutcome;
import dev.baton.v1.HandoffState;
import dev.baton.v1.IssueCustomerTokenRequest;
import dev.baton.v1.IssueCustomerTokenResponse;
import dev.baton.v1.ListAgentsRequest;
import dev.baton.v1.ListEventsRequest;
import dev.baton.v1.ListEventsResponse;
import dev.baton.v1.MessageData;
import dev.baton.v1.Participant;
import dev.baton.v1.ReleaseHandoffRequest;
import dev.baton.v1.Session;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Predicate;

/**
 * The cross-language smoke scenario (clients/README.md) through the public API of this client,
 * against a live server with authentication on: {@code java -cp ... dev.baton.client.Smoke
 * HOST:PORT}. Reads BATON_SMOKE_INTEGRATION_KEY, BATON_SMOKE_OPERATOR_KEY,
 * BATON_SMOKE_OPERATOR_ID, BATON_SMOKE_RESTART and BATON_SMOKE_EXPECT_AI. Prints one line per
 * step and {@code smoke java: ok}; exits 1 with the failed step otherwise.
 */
public final class Smoke {
  private static final Duration WAIT = Duration.ofSeconds(30);
  private static final Duration OVERALL = Duration.ofSeconds(90);
  private static final long RPC_DEADLINE_S = 15;

  /** A failed assertion: its message is the smoke's verdict. */
  private static final class Failure extends RuntimeException {
    Failure(String message) {
      super(message);
    }
  }

  /** What a stream delivered, in order, with waiting on a condition. */
  private static final class Collected<T> {
    private final List<T> items = new ArrayList<>();
    private Throwable error;

    synchronized void add(T item) {
      items.add(item);
      notifyAll();
    }

    synchronized void fail(Throwable t) {
      error = t;
      notifyAll();
    }

    synchronized List<T> snapshot() {
      return new ArrayList<>(items);
    }

    /** The first item matching {@code p}, waiting up to {@link #WAIT}. */
    synchronized T await(String what, Predicate<T> p) throws InterruptedException {
      long deadline = System.nanoTime() + WAIT.toNanos();
      while (true) {
        for (T item : items) {
          if (p.test(item)) {
            return item;
          }
        }
        if (error != null) {
          throw new Failure("stream failed while waiting for " + what + ": " + BatonErrors.describe(error));
        }
        long left = deadline - System.nanoTime();
        if (left <= 0) {
          throw new Failure("timed out after " + WAIT.toSeconds() + " s waiting for " + what);
        }
        TimeUnit.NANOSECONDS.timedWait(this, left);
      }
    }

    synchronized void awaitSize(String what, int n) throws InterruptedException {
      long deadline = System.nanoTime() + WAIT.toNanos();
      while (items.size() < n) {
        if (error != null) {
          throw new Failure("stream failed while waiting for " + what + ": " + BatonErrors.describe(error));
        }
        long left = deadline - System.nanoTime();
        if (left <= 0) {
          throw new Failure("timed out waiting for " + what + " (" + items.size() + " of " + n + ")");
        }
        TimeUnit.NANOSECONDS.timedWait(this, left);
      }
    }
  }

  private final String target;
  private final String integrationKey;
  private final String operatorKey;
  private final String operatorId;
  private final String restart;
  private final boolean expectAi;

  private Smoke(String target) {
    this.target = target;
    this.integrationKey = env("BATON_SMOKE_INTEGRATION_KEY");
    this.operatorKey = env("BATON_SMOKE_OPERATOR_KEY");
    this.operatorId = System.getenv().getOrDefault("BATON_SMOKE_OPERATOR_ID", "olga");
    this.restart = env("BATON_SMOKE_RESTART");
    this.expectAi = "1".equals(System.getenv("BATON_SMOKE_EXPECT_AI"));
  }

  private static String env(String name) {
    String v = System.getenv(name);
    if (v == null || v.isBlank()) {
      System.err.println("smoke java: FAILED: " + name + " is not set");
      System.exit(2);
    }
    return v;
  }

  public static void main(String[] args) {
    String target = args.length > 0 ? args[0] : System.getenv("BATON_SMOKE_TARGET");
    if (target == null || target.isBlank()) {
      System.err.println("usage: Smoke HOST:PORT (or BATON_SMOKE_TARGET)");
      System.exit(2);
    }
    Thread watchdog =
        new Thread(
            () -> {
              try {
                Thread.sleep(OVERALL.toMillis());
              } catch (InterruptedException e) {
                return;
              }
              System.out.println("smoke java: FAILED: overall deadline of " + OVERALL.toSeconds() + " s passed");
              Runtime.getRuntime().halt(1);
            },
            "smoke-deadline");
    watchdog.setDaemon(true);
    watchdog.start();
    long started = System.nanoTime();
    int rc;
    try {
      new Smoke(target).run();
      System.out.printf("smoke java: ok (%.1f s)%n", (System.nanoTime() - started) / 1e9);
      rc = 0;
    } catch (Failure f) {
      System.out.println("smoke java: FAILED: " + f.getMessage());
      rc = 1;
    } catch (Throwable t) {
      System.out.println("smoke java: FAILED: " + BatonErrors.describe(t));
      t.printStackTrace(System.out);
      rc = 1;
    }
    System.exit(rc);
  }

  private static void ok(String line) {
    System.out.println("ok   " + line);
  }

  private static void check(boolean condition, String message) {
    if (!condition) {
      throw new Failure(message);
    }
  }

  /** Plaintext (the smoke server has no TLS); unary calls (all with deadlines) ride out the restart. */
  private static BatonClient.Builder local(String target) {
    return BatonClient.builder(target).plaintext().waitForReady(true);
  }

  private void run() throws Exception {
    try (BatonClient integration = local(target).credentials(BatonCredentials.apiKey(integrationKey)).build()) {
      run(integration);
    }
  }

  private void run(BatonClient integration) throws Exception {
    // 1. Integration key: agent, guideline, customer, session, a customer token.
    Agent agent =
        integration.agents().withDeadlineAfter(RPC_DEADLINE_S, TimeUnit.SECONDS)
            .createAgent(CreateAgentRequest.newBuilder().setAgent(Agent.newBuilder().setName("Smoke agent (java)")).build())
            .getAgent();
    Guideline guideline =
        integration.guidelines().withDeadlineAfter(RPC_DEADLINE_S, TimeUnit.SECONDS)
            .createGuideline(
                CreateGuidelineRequest.newBuilder()
                    .setGuideline(
                        Guideline.newBuilder()
                            .setAgentId(agent.getId())
                            .setCondition("The customer asks for a human")
                            .setAction("Tell the customer you are connecting them with a colleague")
                            .addToolNames("initiate_human_handoff")
                            .setEnabled(true))
                    .build())
            .getGuideline();
    Customer customer =
        integration.customers().withDeadlineAfter(RPC_DEADLINE_S, TimeUnit.SECONDS)
            .createCustomer(CreateCustomerRequest.newBuilder().setCustomer(Customer.newBuilder().setName("Smoke customer (java)")).build())
            .getCustomer();
    Session session =
        integration.sessions().withDeadlineAfter(RPC_DEADLINE_S, TimeUnit.SECONDS)
            .createSession(
                CreateSessionRequest.newBuilder()
                    .setSession(Session.newBuilder().setAgentId(agent.getId()).setCustomerId(customer.getId()).setTitle("java smoke"))
                    .build())
            .getSession();
    String sessionId = session.getId();
    IssueCustomerTokenResponse first = issueToken(integration, customer.getId());
    check(!first.getToken().isEmpty(), "IssueCustomerToken returned no token");
    ok("integration key: agent " + agent.getId() + ", guideline " + guideline.getId() + ", customer "
        + customer.getId() + ", session " + sessionId + ", customer token until " + first.getExpireTime().getSeconds());

    // 2. Customer: a token provider (issues short-lived tokens through the integration client).
    AtomicInteger tokenFetches = new AtomicInteger();
    Instant[] firstFetch = new Instant[1];
    TokenProvider provider =
        () -> {
          if (tokenFetches.getAndIncrement() == 0) {
            firstFetch[0] = Instant.now();
          }
          IssueCustomerTokenResponse r = issueToken(integration, customer.getId());
          return AccessToken.of(r.getToken(), Instant.ofEpochSecond(r.getExpireTime().getSeconds(), r.getExpireTime().getNanos()));
        };
    Participant olga = Participant.newBuilder().setId(operatorId).setDisplayName("Olga").build();
    try (BatonClient customerClient = local(target).credentials(BatonCredentials.fromProvider(provider)).build();
        BatonClient operator = local(target).credentials(BatonCredentials.apiKey(operatorKey)).build()) {

      // 3 (started first, so the handoff arrives live). The operator's inbox watch.
      Collected<HandoffChange> changes = new Collected<>();
      AtomicInteger watchReconnects = new AtomicInteger();
      HandoffWatch watch =
          operator.watchHandoffs(
              WatchOptions.builder().operator(olga).build(),
              new HandoffListener() {
                @Override
                public void onChange(HandoffChange change) {
                  changes.add(change);
                }

                @Override
                public void onReconnecting(Status status, int attempt, Duration delay, long after) {
                  watchReconnects.incrementAndGet();
                }

                @Override
                public void onError(Throwable error) {
                  changes.fail(error);
                }
              });
      // The customer's follow (blocking iterator on a thread) and a staff follow (listener).
      Collected<Event> customerEvents = new Collected<>();
      EventStream follow = customerClient.follow(sessionId, 0);
      Thread reader = new Thread(() -> drain(follow, customerEvents), "smoke-follow");
      reader.setDaemon(true);
      reader.start();
      Collected<Event> staffEvents = new Collected<>();
      Subscription staffFollow =
          integration.follow(
              sessionId,
              0,
              FollowOptions.defaults(),
              new FollowListener() {
                @Override
                public void onEvent(Event event) {
                  staffEvents.add(event);
                }

                @Override
                public void onError(Throwable error) {
                  staffEvents.fail(error);
                }
              });
      try {
        customerEvents.await("the session_created event at offset 0", e -> e.getOffset() == 0);
        Event ask = postCustomer(customerClient, sessionId, "Can I talk to a human please?");
        customerEvents.await("the customer's message on the follow", e -> e.getId().equals(ask.getId()));
        ok("customer (token provider, " + tokenFetches.get() + " fetch): follows the session, posted offset " + ask.getOffset());

        HandoffChange pending =
            changes.await(
                "a PENDING handoff of the session on the inbox watch",
                c -> c.getHandoff().getSessionId().equals(sessionId) && c.getHandoff().getState() == HandoffState.HANDOFF_STATE_PENDING);
        Handoff handoff = pending.getHandoff();
        ok("operator inbox: " + pending.getType() + " " + handoff.getId() + " (requested by " + handoff.getRequestedBy()
            + ") at position " + pending.getPosition());
        Handoff claimed =
            operator.handoffs().withDeadlineAfter(RPC_DEADLINE_S, TimeUnit.SECONDS)
                .claimHandoff(ClaimHandoffRequest.newBuilder().setHandoffId(handoff.getId()).setOperator(olga).build())
                .getHandoff();
        check(claimed.getState() == HandoffState.HANDOFF_STATE_CLAIMED, "ClaimHandoff left state " + claimed.getState());
        Event hello =
            operator.events().withDeadlineAfter(RPC_DEADLINE_S, TimeUnit.SECONDS)
                .createEvent(
                    CreateEventRequest.newBuilder()
                        .setSessionId(sessionId)
                        .setKind(EventKind.EVENT_KIND_MESSAGE)
                        .setSource(EventSource.EVENT_SOURCE_HUMAN_AGENT)
                        .setMessage(MessageData.newBuilder().setText("Hi, this is Olga. How can I help?").setParticipant(olga))
                        .build())
                .getEvent();
        Event seen = customerEvents.await("the operator's message on the customer's follow", e -> e.getId().equals(hello.getId()));
        check(seen.getSource() == EventSource.EVENT_SOURCE_HUMAN_AGENT, "operator message arrived with source " + seen.getSource());
        check("Olga".equals(seen.getMessage().getParticipant().getDisplayName()), "operator message lost its display name");
        Handoff released =
            operator.handoffs().withDeadlineAfter(RPC_DEADLINE_S, TimeUnit.SECONDS)
                .releaseHandoff(
                    ReleaseHandoffRequest.newBuilder()
                        .setHandoffId(handoff.getId())
                        .setOperatorId(operatorId)
                        .setOutcome(HandoffOutcome.HANDOFF_OUTCOME_RETURNED_TO_AI)
                        .setNote("Handled by the Java smoke")
                        .build())
                .getHandoff();
        check(released.getState() == HandoffState.HANDOFF_STATE_ENDED, "ReleaseHandoff left state " + released.getState());
        changes.await(
            "the ENDED change on the inbox watch",
            c -> c.getHandoff().getId().equals(handoff.getId()) && c.getType() == HandoffChangeType.HANDOFF_CHANGE_TYPE_ENDED);
        ok("operator " + operatorId + ": claimed, wrote (offset " + hello.getOffset() + ", seen by the customer), released to the AI");

        // 4. Back to the AI.
        Event order = postCustomer(customerClient, sessionId, "Where is my order 12345?");
        if (expectAi) {
          Event reply =
              customerEvents.await(
                  "an AI_AGENT message after the order question",
                  e -> e.getKind() == EventKind.EVENT_KIND_MESSAGE
                      && e.getSource() == EventSource.EVENT_SOURCE_AI_AGENT
                      && e.getOffset() > order.getOffset());
          ok("AI answers again: \"" + reply.getMessage().getText() + "\"");
        } else {
          ok("customer asked about the order (BATON_SMOKE_EXPECT_AI unset: no AI reply awaited)");
        }

        // 5. A wrong key: typed error.
        try (BatonClient wrong =
            local(target).credentials(BatonCredentials.apiKey("bk_key_0000000000000000_wrongwrongwrong")).build()) {
          wrong.agents().withDeadlineAfter(RPC_DEADLINE_S, TimeUnit.SECONDS).listAgents(ListAgentsRequest.getDefaultInstance());
          throw new Failure("ListAgents with a wrong key succeeded");
        } catch (StatusRuntimeException e) {
          BatonErrors.Decoded err = BatonErrors.decode(e);
          System.out.println("     wrong key: code=" + err.code() + " reason=" + err.reason() + " metadata=" + err.metadata());
          check(err.code() == Status.Code.UNAUTHENTICATED, "wrong key gave " + BatonErrors.describe(e));
          check(!err.reason().isEmpty(), "UNAUTHENTICATED without an ErrorInfo reason: " + BatonErrors.describe(e));
          ok("wrong key: " + err.code() + " / " + err.reason());
        }

        // 6. Restart with the follows and the watch open.
        long lastPositionBefore = watch.lastPosition();
        long restartStarted = System.nanoTime();
        restartServer();
        ok(String.format("server restarted (%.1f s)", (System.nanoTime() - restartStarted) / 1e9));
        Event still = postCustomer(customerClient, sessionId, "Are you still there?");
        Event person = postCustomer(customerClient, sessionId, "I want to talk to a human");
        customerEvents.await("the customer's message after the restart", e -> e.getId().equals(person.getId()));
        HandoffChange again =
            changes.await(
                "the new handoff's change after the restart",
                c -> c.getHandoff().getSessionId().equals(sessionId)
                    && c.getPosition() > lastPositionBefore
                    && !c.getHandoff().getId().equals(handoff.getId()));
        ok("after the restart: posted offsets " + still.getOffset() + ", " + person.getOffset() + "; inbox "
            + again.getType() + " " + again.getHandoff().getId() + " at position " + again.getPosition());

        // Exactly once: the follows against fresh ListEvents reads, the watch's positions.
        List<Event> customerLog = listEvents(customerClient, sessionId);
        customerEvents.awaitSize("the customer's follow to reach the ListEvents read", customerLog.size());
        compare("customer follow", customerEvents.snapshot(), customerLog, false);
        List<Event> staffLog = listEvents(integration, sessionId);
        staffEvents.awaitSize("the staff follow to reach the ListEvents read", staffLog.size());
        compare("staff follow", staffEvents.snapshot(), staffLog, true);
        ok("follows: customer " + customerLog.size() + " events (its view), staff " + staffLog.size()
            + " events, offsets 0.." + (staffLog.size() - 1) + " contiguous; each exactly once, as ListEvents reads them");
        checkPositions(changes.snapshot());
        ok("inbox watch: " + changes.snapshot().size() + " changes, positions strictly increasing, "
            + watchReconnects.get() + " reconnect(s), last position " + watch.lastPosition());

        int fetches = tokenFetches.get();
        check(fetches >= 1, "the token provider was never called");
        if (Duration.between(firstFetch[0], Instant.now()).compareTo(TOKEN_TTL) > 0) {
          check(fetches >= 2, "the token provider was not called again after its token's lifetime");
        }
        ok("token provider called " + fetches + " times (tokens live " + TOKEN_TTL.toSeconds() + " s)");
      } finally {
        follow.close();
        staffFollow.close();
        watch.close();
        reader.join(5_000);
      }
    }
  }

  private static final Duration TOKEN_TTL = Duration.ofSeconds(5);

  private static IssueCustomerTokenResponse issueToken(BatonClient integration, String customerId) {
    return integration.auth().withDeadlineAfter(RPC_DEADLINE_S, TimeUnit.SECONDS)
        .issueCustomerToken(
            IssueCustomerTokenRequest.newBuilder()
                .setCustomerId(customerId)
                .setTtl(com.google.protobuf.Duration.newBuilder().setSeconds(TOKEN_TTL.toSeconds()))
                .build());
  }

  private static void drain(EventStream stream, Collected<Event> into) {
    try {
      for (Event e : stream) {
        into.add(e);
      }
    } catch (Throwable t) {
      into.fail(t);
    }
  }

  /** A customer message, without an idempotency key: the client adds one (and retries safely). */
  private static Event postCustomer(BatonClient customer, String sessionId, String text) {
    return customer.events().withDeadlineAfter(RPC_DEADLINE_S, TimeUnit.SECONDS)
        .createEvent(
            CreateEventRequest.newBuilder()
                .setSessionId(sessionId)
                .setKind(EventKind.EVENT_KIND_MESSAGE)
                .setSource(EventSource.EVENT_SOURCE_CUSTOMER)
                .setMessage(MessageData.newBuilder().setText(text))
                .build())
        .getEvent();
  }

  private static List<Event> listEvents(BatonClient client, String sessionId) {
    List<Event> out = new ArrayList<>();
    Iterator<ListEventsResponse> it =
        client.events().withDeadlineAfter(RPC_DEADLINE_S, TimeUnit.SECONDS)
            .listEvents(ListEventsRequest.newBuilder().setSessionId(sessionId).setMinOffset(0).build());
    it.forEachRemaining(r -> out.addAll(r.getEventsList()));
    return out;
  }

  /** The follow's first {@code log.size()} events are exactly the log, with nothing repeated. */
  private static void compare(String name, List<Event> followed, List<Event> log, boolean contiguous) {
    Set<Long> offsets = new HashSet<>();
    long previous = -1;
    for (Event e : followed) {
      check(offsets.add(e.getOffset()), name + " delivered offset " + e.getOffset() + " twice");
      check(e.getOffset() > previous, name + " went back from offset " + previous + " to " + e.getOffset());
      if (contiguous) {
        check(e.getOffset() == previous + 1, name + " skipped from offset " + previous + " to " + e.getOffset());
      }
      previous = e.getOffset();
    }
    for (int i = 0; i < log.size(); i++) {
      Event want = log.get(i);
      Event got = followed.get(i);
      check(
          got.getOffset() == want.getOffset() && got.getId().equals(want.getId()),
          name + " position " + i + " holds offset " + got.getOffset() + " (" + got.getId() + "), ListEvents has "
              + want.getOffset() + " (" + want.getId() + ")");
    }
  }

  /** OPEN snapshot entries share one position; every other change comes later, strictly increasing. */
  private static void checkPositions(List<HandoffChange> changes) {
    long previous = -1;
    boolean live = false;
    for (HandoffChange c : changes) {
      if (c.getType() == HandoffChangeType.HANDOFF_CHANGE_TYPE_OPEN) {
        check(!live && (previous == -1 || c.getPosition() == previous), "snapshot entry at position " + c.getPosition() + " after " + previous);
      } else {
        check(c.getPosition() > previous, "inbox position " + c.getPosition() + " after " + previous + " (duplicate or out of order)");
        live = true;
      }
      previous = c.getPosition();
    }
  }

  private void restartServer() throws Exception {
    Process p = new ProcessBuilder("sh", "-c", restart).redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.INHERIT).start();
    if (!p.waitFor(60, TimeUnit.SECONDS)) {
      p.destroyForcibly();
      throw new Failure("BATON_SMOKE_RESTART did not finish within 60 s");
    }
    check(p.exitValue() == 0, "BATON_SMOKE_RESTART exited with " + p.exitValue());
  }
}
