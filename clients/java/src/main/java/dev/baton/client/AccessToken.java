package dev.baton.client;

import java.time.Instant;
import java.util.Objects;

/**
 * A credential as a {@link TokenProvider} returns it: the secret sent as
 * {@code authorization: Bearer <value>}, and when it stops being accepted ({@code null}: never,
 * e.g. an API key). For a customer token, {@code IssueCustomerTokenResponse.getExpireTime()}.
 */
public record AccessToken(String value, Instant expiresAt) {
  public AccessToken {
    Objects.requireNonNull(value, "value");
    if (value.isBlank()) {
      throw new IllegalArgumentException("token value must not be blank");
    }
  }

  /** A credential that does not expire. */
  public static AccessToken of(String value) {
    return new AccessToken(value, null);
  }

  /** A credential valid until {@code expiresAt}. */
  public static AccessToken of(String value, Instant expiresAt) {
    return new AccessToken(value, expiresAt);
  }

  @Override
  public String toString() {
    return "AccessToken[expiresAt=" + expiresAt + "]"; // never the secret
  }
}
