// Hand-written Baton client: typed Connect clients for the services over gRPC (HTTP/2) with
// credentials, TLS, keepalive, retries and automatic idempotency keys; `follow`, a resuming
// subscription to a session's event log; `watchHandoffs`, a resuming operator inbox.
// Generated code lives in ./gen (baton.v1) and ./gen-deps (google.rpc error details).
import { create } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { DescService, MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { CallOptions, Client, Interceptor, Transport } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import type * as http2 from "node:http2";
import { isIP } from "node:net";

import { bearerAuth } from "./credentials.js";
import type { Credentials } from "./credentials.js";
import type { Event, EventKind, EventSource, HandoffChange, ParticipantSchema } from "./gen/baton/v1/message_pb.js";
import {
  ListEventsRequestSchema,
  WatchHandoffsRequestSchema,
} from "./gen/baton/v1/request_response_pb.js";
import {
  AgentService,
  AuthService,
  CannedResponseService,
  CustomerService,
  EventService,
  GuidelineService,
  HandoffService,
  SessionService,
  ToolService,
} from "./gen/baton/v1/service_pb.js";
import { backoffDelayMs, idempotencyKeyInterceptor, retryInterceptor, sleep } from "./retry.js";
import type { RetryOptions } from "./retry.js";

/** TLS settings: a custom CA (PEM) and, for mutual TLS, a client certificate and key. */
export interface TlsOptions {
  /** PEM of the CA(s) that signed the server's certificate. Default: Node's trusted roots. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Client certificate chain (PEM), when the server requires client certificates. */
  cert?: string | Buffer;
  /** Private key of `cert` (PEM). */
  key?: string | Buffer;
  /** Name to verify the server's certificate against (SNI), when it differs from the host. */
  serverName?: string;
}

/**
 * HTTP/2 keepalive, so a dead or half-open connection (NAT, load balancer) is noticed and
 * streams fail over to a reconnect. The defaults suit Baton's server, which pings every 30 s
 * and lets clients ping every 10 s or less often (also without calls).
 */
export interface KeepaliveOptions {
  /** Ping after this long without data from the server. Default 30 000 (at least 10 000). */
  pingIntervalMs?: number;
  /** A ping not answered within this long closes the connection. Default 10 000. */
  pingTimeoutMs?: number;
  /** Also ping connections with no open call. Default false: connect-node 2.1 may then ping
   * a connection the server already closed and crash the process with an uncaught
   * ERR_HTTP2_INVALID_SESSION (connectrpc/connect-es#1795). Connections with open calls
   * (follow, watchHandoffs) are pinged anyway, and an idle connection is checked with a ping
   * before it is used again after `pingIntervalMs`. */
  pingIdleConnection?: boolean;
  /** Close a connection unused for this long. Default 15 minutes. */
  idleConnectionTimeoutMs?: number;
}

/** Keepalive defaults of {@link BatonClient}. */
export const DEFAULT_KEEPALIVE: Required<Omit<KeepaliveOptions, "idleConnectionTimeoutMs">> = {
  pingIntervalMs: 30_000,
  pingTimeoutMs: 10_000,
  pingIdleConnection: false,
};

/** Options of {@link BatonClient}. Give `target` or `baseUrl`, or a ready `transport`. */
export interface BatonClientOptions {
  /** "host:port", e.g. "127.0.0.1:8800". Plaintext for a loopback host (127.0.0.0/8, ::1,
   * localhost) unless `tls` is given; TLS (Node's trusted roots, or `tls`) for any other host
   * unless `insecure: true`. */
  target?: string;
  /** Full base URL, e.g. "http://127.0.0.1:8800" or "https://baton.example.com". An http://
   * URL to a host that is not loopback needs `insecure: true` when credentials are given. */
  baseUrl?: string;
  /** Allow plaintext (http) to a host that is not loopback: credentials then travel in clear
   * text, so only on a network you trust (a sidecar, a private link). Default false. */
  insecure?: boolean;
  /**
   * API key or token sent as `authorization: Bearer <credential>`: a string, or a provider
   * function called when a credential is needed (per call, or cached until shortly before
   * the `expiresAt` it returns). See {@link bearerAuth}.
   */
  credentials?: Credentials;
  /** A cached expiring token is renewed this long before it expires (at most a quarter of
   * its lifetime early). Default 60 000 ms. */
  refreshBeforeMs?: number;
  /** TLS (https): `true` for Node's trusted roots, or a custom CA / client certificate
   * (needed for a loopback target only: other hosts get TLS by default). */
  tls?: boolean | TlsOptions;
  /** HTTP/2 keepalive; see {@link DEFAULT_KEEPALIVE}. */
  keepalive?: KeepaliveOptions;
  /** Unary retries on UNAVAILABLE for calls safe to repeat (default on); `false` disables. */
  retry?: RetryOptions | false;
  /** Fill CreateEvent's idempotency_key with a random UUID when empty. Default true. With
   * `false`, a CreateEvent is retried only when the caller gives a key. */
  idempotencyKeys?: boolean;
  /** Extra interceptors, applied inside retries (each attempt) and outside authentication. */
  interceptors?: Interceptor[];
  /** Extra options for node:http2 connect() (merged over the TLS ones). */
  nodeOptions?: http2.SecureClientSessionOptions;
  /** A transport to use as is: every other option above is then ignored. */
  transport?: Transport;
}

/** Options of {@link BatonClient.follow} and {@link BatonClient.followItems}. */
export interface FollowOptions {
  /** First offset to deliver (inclusive). Default 0: the whole log, then live events. */
  fromOffset?: bigint | number;
  /** Only events of these kinds; empty or absent means all kinds. */
  kinds?: EventKind[];
  /** Only events from these sources; empty or absent means all sources. */
  sources?: EventSource[];
  /** Aborting ends the iteration quietly (no error is thrown). */
  signal?: AbortSignal;
  /** First reconnect delay in ms (before jitter). Default 200. */
  initialBackoffMs?: number;
  /** Upper bound of the reconnect delay in ms. Default 10000. */
  maxBackoffMs?: number;
  /** Give up (rethrowing the last error) after this many reconnects in a row without
   * receiving anything. Default: retry forever. */
  maxRetries?: number;
  /** Codes that trigger a reconnect. Default: [Code.Unavailable]. An unexpected end of the
   * stream and a CANCELED that `signal` did not cause (how connect-node reports a dropped
   * connection) always trigger one. */
  retryableCodes?: Code[];
  /** Called before each reconnect, e.g. for logging. */
  onReconnect?: (info: ReconnectInfo) => void;
}

/** What {@link FollowOptions.onReconnect} is told. */
export interface ReconnectInfo {
  /** Why the previous stream ended: a ConnectError, or undefined if it ended without one. */
  error: ConnectError | undefined;
  /** 1 for the first reconnect after a healthy stream, 2 for the next in a row, ... */
  attempt: number;
  /** How long follow waits before reconnecting. */
  delayMs: number;
  /** The offset the new stream starts from. */
  nextOffset: bigint;
}

/** An item of {@link BatonClient.followItems}: an event, or a stream marker. */
export type FollowItem =
  | { kind: "event"; event: Event }
  /** Everything stored when the (re)subscription started has been delivered. Sent after
   * every (re)connect. */
  | { kind: "caughtUp"; nextOffset: bigint }
  /** The idle stream is alive; all offsets below `nextOffset` were delivered or filtered. */
  | { kind: "heartbeat"; nextOffset: bigint; time: Timestamp | undefined }
  /** The subscriber fell behind and the server caught it up from the store. Informational. */
  | { kind: "fellBehind" }
  /** The stream broke and follow is about to reconnect from `nextOffset`. */
  | { kind: "reconnecting"; info: ReconnectInfo };

/** Options of {@link BatonClient.watchHandoffs} and {@link BatonClient.watchHandoffItems}. */
export interface WatchHandoffsOptions {
  /** Only handoffs of this agent's sessions; empty or absent means all agents. */
  agentId?: string;
  /** The operator watching (counts as an available operator while the watch is open). An
   * operator key bound to an operator id may only name that operator. */
  operator?: MessageInitShape<typeof ParticipantSchema>;
  /** Resume after this position (the last change handled). Absent: start with the open
   * handoffs (type OPEN, all at the snapshot's position), then live changes. */
  afterPosition?: bigint | number;
  /** Aborting ends the iteration quietly (no error is thrown). */
  signal?: AbortSignal;
  /** First reconnect delay in ms (before jitter). Default 200. */
  initialBackoffMs?: number;
  /** Upper bound of the reconnect delay in ms. Default 10000. */
  maxBackoffMs?: number;
  /** Give up (rethrowing the last error) after this many reconnects in a row without
   * receiving anything. Default: retry forever. */
  maxRetries?: number;
  /** Codes that trigger a reconnect. Default: [Code.Unavailable] (plus an unexpected end and
   * a CANCELED the signal did not cause, as with follow). */
  retryableCodes?: Code[];
  /** Called before each reconnect, e.g. for logging. */
  onReconnect?: (info: WatchReconnectInfo) => void;
}

/** What {@link WatchHandoffsOptions.onReconnect} is told. */
export interface WatchReconnectInfo {
  /** Why the previous stream ended: a ConnectError, or undefined if it ended without one. */
  error: ConnectError | undefined;
  /** 1 for the first reconnect after a healthy stream, 2 for the next in a row, ... */
  attempt: number;
  /** How long the watch waits before reconnecting. */
  delayMs: number;
  /** The `after_position` the new stream asks for (undefined: a fresh snapshot). */
  afterPosition: bigint | undefined;
}

/** An item of {@link BatonClient.watchHandoffItems}: a change, or a stream marker. */
export type HandoffWatchItem =
  | { kind: "change"; change: HandoffChange }
  /** Every change up to `position` has been delivered (after every (re)connect). */
  | { kind: "caughtUp"; position: bigint }
  /** The idle stream is alive; every change up to `position` has been delivered. */
  | { kind: "heartbeat"; position: bigint; time: Timestamp | undefined }
  /** The stream broke and the watch is about to reconnect after `info.afterPosition`. */
  | { kind: "reconnecting"; info: WatchReconnectInfo };

/**
 * Whether a host ("127.0.0.1", "[::1]", "localhost", or a "host:port" target, or a URL) names
 * this machine: localhost, *.localhost, 127.0.0.0/8, ::1 (also IPv4-mapped 127.x).
 */
export function isLoopback(hostOrTarget: string): boolean {
  let host = hostOrTarget;
  try {
    host = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(host) ? host : `http://${host}`).hostname;
  } catch {
    // not a URL: take it as a bare host
  }
  host = host.toLowerCase().replace(/^\[|\]$/g, "");
  if (host === "localhost" || host.endsWith(".localhost")) return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  if (isIP(host) === 6) {
    if (host === "::1") return true;
    // IPv4-mapped: ::ffff:127.0.0.1, which the URL parser writes as ::ffff:7f00:1.
    if (/^::ffff:127\./.test(host)) return true;
    const mapped = /^::ffff:([0-9a-f]{1,4}):[0-9a-f]{1,4}$/.exec(host);
    return mapped !== null && parseInt(mapped[1]!, 16) >> 8 === 127;
  }
  return false;
}

/**
 * The base URL to connect to. A URL (baseUrl, or a target with a scheme) is kept as given;
 * a "host:port" target gets https when `tls` is given, http with `insecure: true`, and
 * otherwise http only for a loopback host (https, Node's trusted roots, for anything else).
 */
function resolveBaseUrl(opts: BatonClientOptions, tls: boolean): string {
  const given = opts.baseUrl ?? opts.target;
  if (!given) throw new Error("BatonClient: give target, baseUrl or transport");
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(given)) return given;
  const secure = tls || (!opts.insecure && !isLoopback(given));
  return `${secure ? "https" : "http"}://${given}`;
}

/** Whether a failed stream should be resumed (the caller did not abort). */
function resumable(error: ConnectError, retryable: Code[]): boolean {
  // connect-node reports a connection that drops mid-stream (server killed, network gone,
  // keepalive timeout) as CANCELED (HTTP/2 RST_STREAM CANCEL); we did not cancel, so it is a
  // loss of the connection.
  return retryable.includes(error.code) || error.code === Code.Canceled;
}

/** Client of a Baton server: one typed client per service, a resuming event follower and a
 * resuming operator inbox. */
export class BatonClient {
  readonly transport: Transport;
  /** The URL connected to (undefined when a ready `transport` was given). */
  readonly baseUrl: string | undefined;
  readonly agents: Client<typeof AgentService>;
  readonly customers: Client<typeof CustomerService>;
  readonly sessions: Client<typeof SessionService>;
  readonly events: Client<typeof EventService>;
  readonly guidelines: Client<typeof GuidelineService>;
  readonly cannedResponses: Client<typeof CannedResponseService>;
  readonly tools: Client<typeof ToolService>;
  readonly handoffs: Client<typeof HandoffService>;
  readonly auth: Client<typeof AuthService>;
  private readonly sessionManager: Http2SessionManager | undefined;
  /** Credentials come from a provider (asking again may give a fresh token). */
  private readonly refreshableCredentials: boolean;

  constructor(options: string | BatonClientOptions) {
    const opts: BatonClientOptions = typeof options === "string" ? { target: options } : options;
    if (opts.transport) {
      this.transport = opts.transport;
      this.baseUrl = undefined;
      this.refreshableCredentials = false;
    } else {
      const tls = opts.tls === true ? {} : opts.tls || undefined;
      if (tls && opts.insecure) throw new Error("BatonClient: give either tls or insecure, not both");
      const baseUrl = resolveBaseUrl(opts, tls !== undefined);
      const url = new URL(baseUrl);
      if (
        url.protocol === "http:" &&
        opts.credentials !== undefined &&
        !opts.insecure &&
        !isLoopback(url.hostname)
      ) {
        throw new Error(
          `BatonClient: refusing to send credentials in plaintext to ${url.host}; ` +
            "use https (or a target without a scheme, which defaults to TLS), or insecure: true " +
            "on a network you trust",
        );
      }
      this.baseUrl = baseUrl;
      this.refreshableCredentials = typeof opts.credentials === "function";
      const keepalive = { ...DEFAULT_KEEPALIVE, ...opts.keepalive };
      const nodeOptions: http2.SecureClientSessionOptions = {
        ...(tls?.ca !== undefined ? { ca: tls.ca } : {}),
        ...(tls?.cert !== undefined ? { cert: tls.cert } : {}),
        ...(tls?.key !== undefined ? { key: tls.key } : {}),
        ...(tls?.serverName !== undefined ? { servername: tls.serverName } : {}),
        ...opts.nodeOptions,
      };
      this.sessionManager = new Http2SessionManager(baseUrl, keepalive, nodeOptions);
      const interceptors: Interceptor[] = [];
      if (opts.idempotencyKeys ?? true) interceptors.push(idempotencyKeyInterceptor());
      if (opts.retry !== false) interceptors.push(retryInterceptor(opts.retry ?? {}));
      interceptors.push(...(opts.interceptors ?? []));
      if (opts.credentials !== undefined) {
        interceptors.push(bearerAuth(opts.credentials, { refreshBeforeMs: opts.refreshBeforeMs }));
      }
      this.transport = createGrpcTransport({
        baseUrl,
        interceptors,
        sessionManager: this.sessionManager,
      });
    }
    this.agents = createClient(AgentService, this.transport);
    this.customers = createClient(CustomerService, this.transport);
    this.sessions = createClient(SessionService, this.transport);
    this.events = createClient(EventService, this.transport);
    this.guidelines = createClient(GuidelineService, this.transport);
    this.cannedResponses = createClient(CannedResponseService, this.transport);
    this.tools = createClient(ToolService, this.transport);
    this.handoffs = createClient(HandoffService, this.transport);
    this.auth = createClient(AuthService, this.transport);
  }

  /** Closes the HTTP/2 connection (open calls fail with CANCELED). Idle connections do not
   * keep Node running, so this is optional. */
  close(): void {
    this.sessionManager?.abort();
  }

  /**
   * Whether a failed follow / inbox stream is resumed: a retryable code or a dropped
   * connection, or UNAUTHENTICATED once per healthy stream when the credentials come from a
   * provider (bearerAuth has dropped the cached token, so the reconnect sends a fresh one;
   * e.g. the server restarted with another token key, or the token expired meanwhile).
   */
  private shouldResume(error: ConnectError, retryable: Code[], auth: { retried: boolean }): boolean {
    if (resumable(error, retryable)) return true;
    if (error.code !== Code.Unauthenticated || !this.refreshableCredentials || auth.retried) return false;
    auth.retried = true;
    return true;
  }

  /** A typed client for any other service of the API (e.g. ones added after this file). */
  client<S extends DescService>(service: S): Client<S> {
    return createClient(service, this.transport);
  }

  /**
   * The session's events from `fromOffset` on, then live, forever (until `signal` aborts or
   * the consumer stops iterating). Reconnects on UNAVAILABLE and when the stream ends
   * unexpectedly, with jittered exponential backoff, resuming after the last delivered event:
   * every matching event is yielded exactly once, in offset order. With credentials from a
   * provider, an UNAUTHENTICATED stream reconnects once with a fresh token (again only after
   * the new stream delivered something). Other errors (NOT_FOUND when the session does not
   * exist or is deleted, INVALID_ARGUMENT, ...) are thrown.
   */
  async *follow(sessionId: string, options: FollowOptions = {}): AsyncGenerator<Event, void> {
    for await (const item of this.followItems(sessionId, options)) {
      if (item.kind === "event") yield item.event;
    }
  }

  /** Like {@link follow}, but also yields the stream's markers (caught up, heartbeats, ...). */
  async *followItems(
    sessionId: string,
    options: FollowOptions = {},
  ): AsyncGenerator<FollowItem, void> {
    const initialBackoff = options.initialBackoffMs ?? 200;
    const maxBackoff = options.maxBackoffMs ?? 10_000;
    const retryable = options.retryableCodes ?? [Code.Unavailable];
    let next = BigInt(options.fromOffset ?? 0);
    let failures = 0; // reconnects in a row without receiving anything
    const auth = { retried: false }; // reconnected on UNAUTHENTICATED since the last response

    // Our own controller, so that a consumer leaving the loop also cancels the open call.
    const abort = new AbortController();
    const onAbort = () => abort.abort(options.signal?.reason);
    if (options.signal?.aborted) return;
    options.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      for (;;) {
        let error: ConnectError | undefined;
        try {
          const request = create(ListEventsRequestSchema, {
            sessionId,
            minOffset: next,
            kinds: options.kinds ?? [],
            sources: options.sources ?? [],
            follow: true,
          });
          const callOptions: CallOptions = { signal: abort.signal };
          for await (const response of this.events.listEvents(request, callOptions)) {
            failures = 0;
            auth.retried = false;
            for (const event of response.events) {
              if (event.offset < next) continue; // already delivered (e.g. replay after resume)
              next = event.offset + 1n;
              yield { kind: "event", event };
            }
            if (response.caughtUp) yield { kind: "caughtUp", nextOffset: next };
            if (response.fellBehind) yield { kind: "fellBehind" };
            if (response.heartbeat) {
              // Offsets below it are delivered or filtered out: resume there.
              if (response.heartbeat.nextOffset > next) next = response.heartbeat.nextOffset;
              yield {
                kind: "heartbeat",
                nextOffset: response.heartbeat.nextOffset,
                time: response.heartbeat.time,
              };
            }
          }
        } catch (e) {
          if (abort.signal.aborted) return;
          const ce = ConnectError.from(e);
          if (!this.shouldResume(ce, retryable, auth)) throw ce;
          error = ce;
        }
        if (abort.signal.aborted) return;
        // A follow stream only ends on error; an end without one is unexpected: reconnect.
        failures += 1;
        if (options.maxRetries !== undefined && failures > options.maxRetries) {
          throw error ?? new ConnectError("follow stream ended unexpectedly", Code.Unavailable);
        }
        const delayMs = backoffDelayMs(failures, {
          initialBackoffMs: initialBackoff,
          maxBackoffMs: maxBackoff,
        });
        const info: ReconnectInfo = { error, attempt: failures, delayMs, nextOffset: next };
        options.onReconnect?.(info);
        yield { kind: "reconnecting", info };
        if (!(await sleep(delayMs, abort.signal))) return;
      }
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
      abort.abort(); // cancels the open call, if any
    }
  }

  /**
   * The operator inbox: handoff changes, forever (until `signal` aborts or the consumer stops
   * iterating). Without `afterPosition` it starts with the open handoffs (type OPEN), then
   * every change live. Reconnects on UNAVAILABLE (e.g. a server restart), a dropped
   * connection or an unexpected end, with jittered exponential backoff, resuming with
   * `after_position` = the last position delivered: every change is yielded exactly once,
   * in increasing position order. UNAUTHENTICATED with provider credentials reconnects once
   * with a fresh token, as in {@link follow}. Other errors (PERMISSION_DENIED,
   * INVALID_ARGUMENT, ...) are thrown.
   */
  async *watchHandoffs(options: WatchHandoffsOptions = {}): AsyncGenerator<HandoffChange, void> {
    for await (const item of this.watchHandoffItems(options)) {
      if (item.kind === "change") yield item.change;
    }
  }

  /** Like {@link watchHandoffs}, but also yields the stream's markers (caught up, heartbeats,
   * reconnecting). */
  async *watchHandoffItems(
    options: WatchHandoffsOptions = {},
  ): AsyncGenerator<HandoffWatchItem, void> {
    const backoff = {
      initialBackoffMs: options.initialBackoffMs ?? 200,
      maxBackoffMs: options.maxBackoffMs ?? 10_000,
    };
    const retryable = options.retryableCodes ?? [Code.Unavailable];
    // The resume point: every change up to it was delivered. Undefined until the first
    // snapshot is complete (a watch started without afterPosition).
    let cursor = options.afterPosition === undefined ? undefined : BigInt(options.afterPosition);
    let failures = 0;
    const auth = { retried: false };

    const abort = new AbortController();
    const onAbort = () => abort.abort(options.signal?.reason);
    if (options.signal?.aborted) return;
    options.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      for (;;) {
        let error: ConnectError | undefined;
        // A snapshot (OPEN entries share the snapshot's position, so they cannot be resumed
        // from halfway) is held back until `caught_up`: a stream that breaks before it is
        // simply started again, and nothing is delivered twice.
        const held: HandoffChange[] = [];
        try {
          const request = create(WatchHandoffsRequestSchema, {
            agentId: options.agentId ?? "",
            operator: options.operator,
            afterPosition: cursor,
          });
          const callOptions: CallOptions = { signal: abort.signal };
          for await (const response of this.handoffs.watchHandoffs(request, callOptions)) {
            failures = 0;
            auth.retried = false;
            for (const change of response.changes) {
              if (cursor === undefined) {
                held.push(change);
                continue;
              }
              if (change.position <= cursor) continue; // already delivered
              cursor = change.position;
              yield { kind: "change", change };
            }
            if (response.caughtUp) {
              if (cursor === undefined) {
                let reached = response.caughtUpPosition;
                for (const change of held) if (change.position > reached) reached = change.position;
                cursor = reached;
                for (const change of held.splice(0)) yield { kind: "change", change };
              } else if (response.caughtUpPosition > cursor) {
                cursor = response.caughtUpPosition;
              }
              yield { kind: "caughtUp", position: cursor };
            }
            if (response.heartbeat && cursor !== undefined) {
              if (response.heartbeat.position > cursor) cursor = response.heartbeat.position;
              yield { kind: "heartbeat", position: cursor, time: response.heartbeat.time };
            }
          }
        } catch (e) {
          if (abort.signal.aborted) return;
          const ce = ConnectError.from(e);
          if (!this.shouldResume(ce, retryable, auth)) throw ce;
          error = ce;
        }
        if (abort.signal.aborted) return;
        failures += 1;
        if (options.maxRetries !== undefined && failures > options.maxRetries) {
          throw error ?? new ConnectError("inbox stream ended unexpectedly", Code.Unavailable);
        }
        const delayMs = backoffDelayMs(failures, backoff);
        const info: WatchReconnectInfo = { error, attempt: failures, delayMs, afterPosition: cursor };
        options.onReconnect?.(info);
        yield { kind: "reconnecting", info };
        if (!(await sleep(delayMs, abort.signal))) return;
      }
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
      abort.abort();
    }
  }
}
