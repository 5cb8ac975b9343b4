package dev.baton.client;

/**
 * Supplies the credential for calls, fetching a fresh one when asked (for example a widget
 * backend issuing customer tokens). Called by {@link BatonCredentials#fromProvider} on a gRPC
 * executor thread, never concurrently, only when no cached token is fresh; it may block (e.g. call
 * {@code AuthService.IssueCustomerToken} through another client). A thrown exception fails the
 * call that needed the token (its cause attached) with the exception's gRPC status when it has one
 * (a {@code StatusRuntimeException} or {@code StatusException}, also as a cause), so on
 * UNAVAILABLE while the token service restarts follow and watchHandoffs reconnect instead of
 * giving up. Any other exception fails the call with UNAUTHENTICATED. The next call asks again.
 */
@FunctionalInterface
public interface TokenProvider {
  AccessToken fetch() throws Exception;
}
