package dev.baton.client;

/**
 * Supplies the credential for calls, fetching a fresh one when asked (for example a widget
 * backend issuing customer tokens). Called by {@link BatonCredentials#fromProvider} on a gRPC
 * executor thread, never concurrently, only when no cached token is fresh; it may block (e.g. call
 * {@code AuthService.IssueCustomerToken} through another client). A thrown exception fails the
 * call that needed the token with UNAUTHENTICATED (its cause attached); the next call asks again.
 */
@FunctionalInterface
public interface TokenProvider {
  AccessToken fetch() throws Exception;
}
