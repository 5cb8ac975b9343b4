package dev.baton.client;

import io.grpc.CallCredentials;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusException;
import io.grpc.StatusRuntimeException;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.Objects;
import java.util.concurrent.Executor;
import java.util.function.Supplier;

/**
 * Per-call credentials for Baton: every call carries {@code authorization: Bearer <credential>},
 * where the credential is an API key ({@code bk_key_...}) or a customer token.
 *
 * <ul>
 *   <li>{@link #apiKey(String)} / {@link #token(String)} — a fixed secret.
 *   <li>{@link #fromSupplier(Supplier)} — asks the supplier on every call (it caches itself).
 *   <li>{@link #fromProvider(TokenProvider)} — asks the provider when needed: on the first call,
 *       once 80% of the cached token's lifetime has passed, and after the server answered
 *       UNAUTHENTICATED (when used through {@link BatonClient}, which reports those back with
 *       {@link #invalidate()}). Tokens without an expiry are kept until invalidated.
 * </ul>
 *
 * <p>Metadata is computed on the call's executor, so a blocking provider never stalls the
 * transport. Credentials are sent over plaintext channels too (a local or development server);
 * use TLS anywhere else.
 */
public abstract class BatonCredentials extends CallCredentials {
  static final Metadata.Key<String> AUTHORIZATION =
      Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

  BatonCredentials() {}

  /** An API key made with {@code baton keys create} ({@code bk_key_...}). */
  public static BatonCredentials apiKey(String key) {
    return fixed(key);
  }

  /** A fixed token, e.g. a customer token handed to a widget. */
  public static BatonCredentials token(String token) {
    return fixed(token);
  }

  /** Calls {@code supplier} for every RPC; it must be fast or cache on its own. */
  public static BatonCredentials fromSupplier(Supplier<String> supplier) {
    Objects.requireNonNull(supplier, "supplier");
    return new BatonCredentials() {
      @Override
      String credential() {
        return supplier.get();
      }
    };
  }

  /** Fetches tokens from {@code provider} when needed and caches them (see the class doc). */
  public static BatonCredentials fromProvider(TokenProvider provider) {
    return new Refreshing(provider, Clock.systemUTC());
  }

  static BatonCredentials fromProvider(TokenProvider provider, Clock clock) {
    return new Refreshing(provider, clock);
  }

  private static BatonCredentials fixed(String secret) {
    AccessToken token = AccessToken.of(secret); // validates
    return new BatonCredentials() {
      @Override
      String credential() {
        return token.value();
      }
    };
  }

  /** The credential for the next call; may block. */
  abstract String credential() throws Exception;

  /**
   * Drops a cached token so the next call fetches a new one (a no-op for fixed credentials).
   * {@link BatonClient} calls it when a call fails with UNAUTHENTICATED.
   */
  public void invalidate() {}

  @Override
  public void applyRequestMetadata(RequestInfo info, Executor appExecutor, MetadataApplier applier) {
    appExecutor.execute(
        () -> {
          String value;
          try {
            value = credential();
          } catch (Throwable t) {
            applier.fail(providerFailure(t));
            return;
          }
          if (value == null || value.isBlank()) {
            applier.fail(Status.UNAUTHENTICATED.withDescription("the credential provider returned no credential"));
            return;
          }
          Metadata headers = new Metadata();
          headers.put(AUTHORIZATION, "Bearer " + value);
          applier.apply(headers);
        });
  }

  /**
   * The status a call fails with when the credential could not be had: the provider's own gRPC
   * status when it failed with one (e.g. UNAVAILABLE from {@code IssueCustomerToken} while the
   * server restarts, on which follow and watchHandoffs reconnect), found
   * in its cause chain; UNAUTHENTICATED otherwise. The provider's exception is the cause.
   */
  static Status providerFailure(Throwable t) {
    Status.Code code = Status.Code.UNAUTHENTICATED;
    int depth = 0;
    for (Throwable c = t; c != null && depth < 16; c = c.getCause(), depth++) {
      if (c instanceof StatusRuntimeException s) {
        code = s.getStatus().getCode();
        break;
      }
      if (c instanceof StatusException s) {
        code = s.getStatus().getCode();
        break;
      }
    }
    if (code == Status.Code.OK) {
      code = Status.Code.UNAUTHENTICATED; // (a status exception never carries OK; be safe)
    }
    return Status.fromCode(code).withDescription("the credential provider failed: " + t).withCause(t);
  }

  /** Caches the provider's token until 80% of its lifetime has passed or it is invalidated. */
  static final class Refreshing extends BatonCredentials {
    private final TokenProvider provider;
    private final Clock clock;
    private AccessToken cached; // guarded by this
    private Instant refreshAt; // guarded by this; null: never

    Refreshing(TokenProvider provider, Clock clock) {
      this.provider = Objects.requireNonNull(provider, "provider");
      this.clock = clock;
    }

    @Override
    synchronized String credential() throws Exception {
      Instant now = clock.instant();
      if (cached == null || (refreshAt != null && !now.isBefore(refreshAt))) {
        AccessToken fresh = Objects.requireNonNull(provider.fetch(), "TokenProvider returned null");
        cached = fresh;
        refreshAt = fresh.expiresAt() == null ? null : now.plus(lifetimeShare(now, fresh.expiresAt()));
      }
      return cached.value();
    }

    private static Duration lifetimeShare(Instant now, Instant expiresAt) {
      Duration life = Duration.between(now, expiresAt);
      return life.isNegative() ? Duration.ZERO : life.multipliedBy(4).dividedBy(5);
    }

    @Override
    public synchronized void invalidate() {
      cached = null;
      refreshAt = null;
    }
  }
}
