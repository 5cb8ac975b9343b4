// Credentials: an API key or a token, fixed or from a provider, sent on every call as
// `authorization: Bearer <credential>` by an interceptor.
import { Code, ConnectError } from "@connectrpc/connect";
import type { Client, Interceptor } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";

import type { AuthService } from "./gen/baton/v1/service_pb.js";

/** A token with an optional expiry: the provider is asked again shortly before it. */
export interface ExpiringToken {
  token: string;
  /** When the token stops being accepted (Date or epoch milliseconds). */
  expiresAt?: Date | number;
}

/**
 * A function the client calls when it needs a credential. Returning a plain string means
 * "ask me again on the next call"; returning `{ token, expiresAt }` lets the client cache the
 * token until `refreshBeforeMs` (at most a quarter of its lifetime) before `expiresAt`. Concurrent calls share one pending
 * request to the provider.
 */
export type CredentialProvider = () =>
  | string
  | ExpiringToken
  | Promise<string | ExpiringToken>;

/** An API key or token (fixed), or a provider of one. */
export type Credentials = string | CredentialProvider;

/** Options of {@link bearerAuth}. */
export interface BearerAuthOptions {
  /** A cached expiring token is renewed this long before it expires, but at most a quarter
   * of its lifetime (as seen when it was fetched) early. Default 60 000 ms. */
  refreshBeforeMs?: number;
  /** Clock (epoch ms), for tests. */
  now?: () => number;
}

/**
 * Keeps the current credential of a {@link Credentials} value: fixed strings as they are,
 * providers called when needed (per call, or cached until near expiry), with one call to the
 * provider in flight at a time. `invalidate()` drops a cached token (e.g. after the server
 * answered UNAUTHENTICATED).
 */
export class CredentialCache {
  private cached: { token: string; renewAt: number } | undefined;
  private pending: Promise<string> | undefined;
  private readonly refreshBeforeMs: number;
  private readonly now: () => number;

  constructor(
    private readonly credentials: Credentials,
    options: BearerAuthOptions = {},
  ) {
    this.refreshBeforeMs = options.refreshBeforeMs ?? 60_000;
    this.now = options.now ?? Date.now;
  }

  /** Whether credentials come from a provider (so asking again may give a fresh one). */
  get refreshable(): boolean {
    return typeof this.credentials === "function";
  }

  /** The credential to send now. */
  async get(): Promise<string> {
    const source = this.credentials;
    if (typeof source === "string") return source;
    if (this.cached && this.now() < this.cached.renewAt) return this.cached.token;
    if (!this.pending) {
      this.pending = (async () => {
        try {
          const value = await source();
          const token = typeof value === "string" ? value : value.token;
          if (!token) throw new ConnectError("credential provider returned no token", Code.Unauthenticated);
          if (typeof value !== "string" && value.expiresAt !== undefined) {
            const expires = typeof value.expiresAt === "number" ? value.expiresAt : value.expiresAt.getTime();
            // At most a quarter of the token's lifetime early: a short-lived token (lifetime
            // <= refreshBeforeMs) is then still reused for most of its life instead of being
            // fetched again on every call.
            const lifetime = Math.max(0, expires - this.now());
            this.cached = { token, renewAt: expires - Math.min(this.refreshBeforeMs, lifetime / 4) };
          } else {
            this.cached = undefined;
          }
          return token;
        } finally {
          this.pending = undefined;
        }
      })();
    }
    return this.pending;
  }

  /** Forgets a cached token: the next {@link get} asks the provider. */
  invalidate(): void {
    this.cached = undefined;
  }
}

/**
 * An interceptor sending `authorization: Bearer <credential>` on every call. With a
 * provider, a unary call answered UNAUTHENTICATED drops the cached token and is retried once
 * with a fresh one (the server refuses before doing anything, so this is always safe); a
 * stream answered UNAUTHENTICATED (when it starts or while it is read) drops the cached token
 * and fails, so its next (re)connect asks the provider again (BatonClient's follow and
 * watchHandoffs reconnect once for it).
 */
export function bearerAuth(credentials: Credentials, options: BearerAuthOptions = {}): Interceptor {
  const cache = new CredentialCache(credentials, options);
  return (next) => async (req) => {
    req.header.set("authorization", `Bearer ${await cache.get()}`);
    try {
      const res = await next(req);
      if (!res.stream || !cache.refreshable) return res;
      // Depending on the protocol, a stream's error may only surface while it is read.
      return { ...res, message: invalidateOnUnauthenticated(res.message, cache) };
    } catch (e) {
      const err = ConnectError.from(e);
      if (err.code !== Code.Unauthenticated || !cache.refreshable) throw e;
      cache.invalidate();
      if (req.stream) throw e;
      req.header.set("authorization", `Bearer ${await cache.get()}`);
      return await next(req);
    }
  };
}

async function* invalidateOnUnauthenticated<T>(messages: AsyncIterable<T>, cache: CredentialCache): AsyncIterable<T> {
  try {
    yield* messages;
  } catch (e) {
    if (ConnectError.from(e).code === Code.Unauthenticated) cache.invalidate();
    throw e;
  }
}

/** What {@link customerTokenProvider} needs: an AuthService client (e.g. a BatonClient). */
export interface CustomerTokenIssuer {
  auth: Client<typeof AuthService>;
}

/**
 * A {@link CredentialProvider} for a customer: issues customer tokens through an integration
 * client (`AuthService.IssueCustomerToken`), cached until shortly before they expire. This is
 * what a chat widget's backend does; `onIssue` is told each time a token is issued.
 */
export function customerTokenProvider(
  issuer: CustomerTokenIssuer,
  customerId: string,
  options: { ttlSeconds?: number; onIssue?: (expiresAt: Date) => void } = {},
): CredentialProvider {
  return async () => {
    const response = await issuer.auth.issueCustomerToken({
      customerId,
      ttl: options.ttlSeconds ? { seconds: BigInt(options.ttlSeconds) } : undefined,
    });
    const expiresAt = response.expireTime ? timestampDate(response.expireTime) : undefined;
    if (expiresAt) options.onIssue?.(expiresAt);
    return { token: response.token, expiresAt };
  };
}
