package dev.baton.client;

import dev.baton.v1.Agent;
import dev.baton.v1.Customer;
import dev.baton.v1.Event;
import dev.baton.v1.EventKind;
import dev.baton.v1.EventSource;
import dev.baton.v1.MessageData;
import dev.baton.v1.Participant;
import dev.baton.v1.Session;
import dev.baton.v1.SessionMode;
import dev.baton.v1.CreateAgentRequest;
import dev.baton.v1.CreateCustomerRequest;
import dev.baton.v1.CreateEventRequest;
import dev.baton.v1.CreateSessionRequest;
import dev.baton.v1.GetSessionRequest;
import dev.baton.v1.UpdateSessionRequest;
import com.google.protobuf.FieldMask;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

/**
 * End-to-end smoke test of the Java client against a live server:
 * {@code java -cp ... dev.baton.client.Smoke HOST:PORT}. Prints one line per check and finally
 * {@code N passed, N failed}; exits 1 on any failure. With {@code BATON_SMOKE_EXPECT_AI=1} it
 * also waits for the AI agent's reply to the customer message.
 */
public final class Smoke {
  private static final Duration WAIT = Duration.ofSeconds(20);
  private static final long RPC_DEADLINE_MS = 10_000;

  private final BatonClient baton;
  private final List<Event> seen = new ArrayList<>(); // guarded by itself
  private volatile Throwable followError;
  private int passed;
  private int failed;

  private Smoke(BatonClient baton) {
    this.baton = baton;
  }

  public static void main(String[] args) throws Exception {
    if (args.length != 1) {
      System.err.println("usage: Smoke HOST:PORT");
      System.exit(2);
    }
    boolean expectAi = "1".equals(System.getenv("BATON_SMOKE_EXPECT_AI"));
    int failed;
    try (BatonClient baton = BatonClient.connect(args[0])) {
      failed = new Smoke(baton).run(expectAi);
    }
    System.exit(failed == 0 ? 0 : 1);
  }

  private interface Step<T> {
    T run() throws Exception;
  }

  /** Runs one check; a thrown exception or a null/false result fails it. */
  private <T> T check(String name, Step<T> step) {
    try {
      T result = step.run();
      if (result == null || Boolean.FALSE.equals(result)) {
        failed++;
        System.out.println("FAIL " + name);
        return null;
      }
      passed++;
      System.out.println("ok   " + name);
      return result;
    } catch (Throwable t) {
      failed++;
      System.out.println("FAIL " + name + ": " + BatonErrors.describe(t));
      return null;
    }
  }

  private int run(boolean expectAi) throws Exception {
    String run = UUID.randomUUID().toString().substring(0, 8);

    Agent agent =
        check(
            "create agent",
            () ->
                baton.agents().withDeadlineAfter(RPC_DEADLINE_MS, TimeUnit.MILLISECONDS)
                    .createAgent(
                        CreateAgentRequest.newBuilder()
                            .setAgent(Agent.newBuilder().setName("java-smoke-" + run))
                            .build())
                    .getAgent());
    Customer customer =
        check(
            "create customer",
            () ->
                baton.customers().withDeadlineAfter(RPC_DEADLINE_MS, TimeUnit.MILLISECONDS)
                    .createCustomer(
                        CreateCustomerRequest.newBuilder()
                            .setCustomer(
                                Customer.newBuilder().setName("Cy " + run).putMetadata("crm_id", run))
                            .build())
                    .getCustomer());
    Session session =
        agent == null || customer == null
            ? null
            : check(
                "create session",
                () ->
                    baton.sessions().withDeadlineAfter(RPC_DEADLINE_MS, TimeUnit.MILLISECONDS)
                        .createSession(
                            CreateSessionRequest.newBuilder()
                                .setSession(
                                    Session.newBuilder()
                                        .setAgentId(agent.getId())
                                        .setCustomerId(customer.getId())
                                        .setTitle("java smoke " + run))
                                .build())
                        .getSession());
    if (session == null) {
      return finish();
    }
    String sessionId = session.getId();

    // Follow the whole log on a background thread with the blocking EventStream.
    EventStream stream = baton.follow(sessionId, 0);
    Thread reader =
        new Thread(
            () -> {
              try {
                for (Event e : stream) {
                  synchronized (seen) {
                    seen.add(e);
                    seen.notifyAll();
                  }
                }
              } catch (Throwable t) {
                followError = t;
                synchronized (seen) {
                  seen.notifyAll();
                }
              }
            },
            "smoke-follow");
    reader.setDaemon(true);
    reader.start();

    try {
      check(
          "follow delivers the session_created system event at offset 0",
          () ->
              awaitEvent("offset 0", e -> e.getOffset() == 0)
                  .filter(e -> e.getSource() == EventSource.EVENT_SOURCE_SYSTEM)
                  .isPresent());

      Event customerMsg =
          check(
              "post customer message",
              () ->
                  createEvent(
                      CreateEventRequest.newBuilder()
                          .setSessionId(sessionId)
                          .setKind(EventKind.EVENT_KIND_MESSAGE)
                          .setSource(EventSource.EVENT_SOURCE_CUSTOMER)
                          .setMessage(MessageData.newBuilder().setText("Where is my parcel?"))
                          .setIdempotencyKey("smoke-customer-" + run)));
      if (customerMsg != null) {
        check(
            "customer message arrives on the follow stream",
            () ->
                awaitEvent("customer message", e -> e.getId().equals(customerMsg.getId()))
                    .filter(e -> e.getMessage().getText().equals("Where is my parcel?"))
                    .isPresent());
        if (expectAi) {
          check(
              "AI reply arrives (MESSAGE from AI_AGENT, correlated to the customer message)",
              () ->
                  awaitEvent(
                          "AI reply",
                          e ->
                              e.getKind() == EventKind.EVENT_KIND_MESSAGE
                                  && e.getSource() == EventSource.EVENT_SOURCE_AI_AGENT
                                  && e.getCorrelationId().equals(customerMsg.getId()))
                      .isPresent());
        }
      }

      check(
          "UpdateSession mode=MANUAL",
          () -> updateMode(sessionId, SessionMode.SESSION_MODE_MANUAL) == SessionMode.SESSION_MODE_MANUAL);

      Participant human = Participant.newBuilder().setId("hum_" + run).setDisplayName("Hana (support)").build();
      Event humanMsg =
          check(
              "post human agent message with participant",
              () ->
                  createEvent(
                      CreateEventRequest.newBuilder()
                          .setSessionId(sessionId)
                          .setKind(EventKind.EVENT_KIND_MESSAGE)
                          .setSource(EventSource.EVENT_SOURCE_HUMAN_AGENT)
                          .setMessage(MessageData.newBuilder().setText("Hi, Hana here.").setParticipant(human))));
      if (humanMsg != null) {
        check(
            "human message arrives with its participant",
            () ->
                awaitEvent("human message", e -> e.getId().equals(humanMsg.getId()))
                    .filter(e -> e.getSource() == EventSource.EVENT_SOURCE_HUMAN_AGENT)
                    .filter(e -> e.getMessage().getParticipant().equals(human))
                    .isPresent());
      }

      check(
          "UpdateSession mode=AUTO",
          () -> updateMode(sessionId, SessionMode.SESSION_MODE_AUTO) == SessionMode.SESSION_MODE_AUTO);

      check(
          "GetSession on an unknown id is NOT_FOUND",
          () -> {
            try {
              baton.sessions().withDeadlineAfter(RPC_DEADLINE_MS, TimeUnit.MILLISECONDS)
                  .getSession(GetSessionRequest.newBuilder().setSessionId("ses_does_not_exist_" + run).build());
              System.out.println("     GetSession unexpectedly succeeded");
              return false;
            } catch (StatusRuntimeException e) {
              if (e.getStatus().getCode() != Status.Code.NOT_FOUND) {
                System.out.println("     got " + BatonErrors.describe(e));
                return false;
              }
              return true;
            }
          });

      check(
          "follow stream offsets are contiguous from 0, no duplicates",
          () -> {
            long head =
                baton.sessions().withDeadlineAfter(RPC_DEADLINE_MS, TimeUnit.MILLISECONDS)
                    .getSession(GetSessionRequest.newBuilder().setSessionId(sessionId).build())
                    .getSession()
                    .getNextOffset();
            if (awaitEvent("offset " + (head - 1), e -> e.getOffset() == head - 1).isEmpty()) {
              return false;
            }
            List<Event> copy;
            synchronized (seen) {
              copy = new ArrayList<>(seen);
            }
            for (int i = 0; i < copy.size(); i++) {
              if (copy.get(i).getOffset() != i) {
                System.out.println("     position " + i + " holds offset " + copy.get(i).getOffset());
                return false;
              }
            }
            System.out.println("     " + copy.size() + " events, offsets 0.." + (copy.size() - 1) + ", head " + head);
            return copy.size() >= head;
          });
    } finally {
      stream.close();
      reader.join(5_000);
    }
    return finish();
  }

  private int finish() {
    System.out.println(passed + " passed, " + failed + " failed");
    return failed;
  }

  private Event createEvent(CreateEventRequest.Builder request) {
    return baton.events().withDeadlineAfter(RPC_DEADLINE_MS, TimeUnit.MILLISECONDS)
        .createEvent(request.build())
        .getEvent();
  }

  private SessionMode updateMode(String sessionId, SessionMode mode) {
    return baton.sessions().withDeadlineAfter(RPC_DEADLINE_MS, TimeUnit.MILLISECONDS)
        .updateSession(
            UpdateSessionRequest.newBuilder()
                .setSessionId(sessionId)
                .setSession(Session.newBuilder().setMode(mode))
                .setUpdateMask(FieldMask.newBuilder().addPaths("mode"))
                .build())
        .getSession()
        .getMode();
  }

  /** Waits up to {@link #WAIT} for a followed event matching {@code p}. */
  private Optional<Event> awaitEvent(String what, Predicate<Event> p) throws InterruptedException {
    long deadline = System.nanoTime() + WAIT.toNanos();
    synchronized (seen) {
      while (true) {
        for (Event e : seen) {
          if (p.test(e)) {
            return Optional.of(e);
          }
        }
        if (followError != null) {
          System.out.println("     follow stream failed: " + BatonErrors.describe(followError));
          return Optional.empty();
        }
        long left = deadline - System.nanoTime();
        if (left <= 0) {
          System.out.println("     timed out after " + WAIT.toSeconds() + "s waiting for " + what);
          return Optional.empty();
        }
        TimeUnit.NANOSECONDS.timedWait(seen, left);
      }
    }
  }
}
