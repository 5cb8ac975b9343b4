// Retries: jittered exponential backoff, a unary retry interceptor for calls that are safe to
// repeat (honouring the server's RetryInfo), and the automatic idempotency key of CreateEvent
// that makes a retried append safe.
import { randomUUID } from "node:crypto";

import { Code, ConnectError } from "@connectrpc/connect";
import type { Interceptor } from "@connectrpc/connect";
import type { DescMethod } from "@bufbuild/protobuf";

import { retryDelayMs } from "./errors.js";

/** Jittered exponential backoff settings (shared by retries, follow and watchHandoffs). */
export interface BackoffOptions {
  /** First delay in ms (before jitter). */
  initialBackoffMs?: number;
  /** Upper bound of a delay in ms. */
  maxBackoffMs?: number;
  /** Growth per attempt. Default 2. */
  multiplier?: number;
}

/**
 * The delay before retry number `attempt` (1-based): "equal jitter", uniformly in
 * [c/2, c] with c = min(max, initial * multiplier^(attempt-1)). `random` is for tests.
 */
export function backoffDelayMs(
  attempt: number,
  options: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  const initial = options.initialBackoffMs ?? 200;
  const max = options.maxBackoffMs ?? 10_000;
  const multiplier = options.multiplier ?? 2;
  const ceiling = Math.min(max, initial * multiplier ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/** Resolves true after `ms`, or false as soon as `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const done = (ok: boolean) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      resolve(ok);
    };
    const onAbort = () => done(false);
    const timer = setTimeout(() => done(true), ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Options of {@link retryInterceptor}. */
export interface RetryOptions extends BackoffOptions {
  /** Attempts in all, the first included. Default 4. */
  maxAttempts?: number;
  /** Codes that are retried. Default [Code.Unavailable]. */
  retryableCodes?: Code[];
  /** Which calls are safe to repeat, given the method and the request message. Default
   * {@link isSafeToRetry}. */
  isSafe?: (method: DescMethod, message: unknown) => boolean;
  /** Called before each retry, e.g. for logging. */
  onRetry?: (info: { method: string; attempt: number; delayMs: number; error: ConnectError }) => void;
}

/**
 * Unary calls of Baton that may be sent twice without harm: reads (Get*, List*,
 * GetHandoffStats, ListTools), CreateEvent when the request carries an idempotency key (the
 * server then returns the original event instead of appending again; {@link
 * idempotencyKeyInterceptor} fills one in unless `idempotencyKeys: false`) and
 * IssueCustomerToken (a second token is harmless). A CreateEvent without a key, creates,
 * updates, deletes and handoff controls are not retried: UNAVAILABLE may come after the
 * server acted.
 */
export function isSafeToRetry(method: DescMethod, message?: unknown): boolean {
  if (method.methodKind !== "unary") return false;
  const name = method.name;
  if (name === "CreateEvent") {
    const key = (message as { idempotencyKey?: unknown } | undefined)?.idempotencyKey;
    return typeof key === "string" && key !== "";
  }
  return name.startsWith("Get") || name.startsWith("List") || name === "IssueCustomerToken";
}

/**
 * Retries unary calls that failed with a retryable code (UNAVAILABLE) when the method is
 * safe to repeat, up to `maxAttempts`, waiting the server's RetryInfo delay when it gives one
 * and a jittered exponential backoff otherwise. Stops early when the call's signal aborts
 * (its timeout or the caller's signal). Streams are left alone (follow and watchHandoffs
 * resume by position instead).
 */
export function retryInterceptor(options: RetryOptions = {}): Interceptor {
  const maxAttempts = Math.max(1, options.maxAttempts ?? 4);
  const codes = options.retryableCodes ?? [Code.Unavailable];
  const isSafe = options.isSafe ?? isSafeToRetry;
  const backoff = {
    initialBackoffMs: options.initialBackoffMs ?? 100,
    maxBackoffMs: options.maxBackoffMs ?? 5_000,
    multiplier: options.multiplier,
  };
  return (next) => async (req) => {
    if (req.stream || !isSafe(req.method, req.message)) return next(req);
    for (let attempt = 1; ; attempt++) {
      try {
        return await next(req);
      } catch (e) {
        const error = ConnectError.from(e);
        if (attempt >= maxAttempts || !codes.includes(error.code) || req.signal.aborted) throw e;
        const delayMs = retryDelayMs(error) ?? backoffDelayMs(attempt, backoff);
        options.onRetry?.({ method: req.method.name, attempt, delayMs, error });
        if (!(await sleep(delayMs, req.signal))) throw e;
      }
    }
  };
}

/** A fresh idempotency key (a random UUID). */
export function newIdempotencyKey(): string {
  return randomUUID();
}

/**
 * Fills `idempotency_key` of every CreateEvent request that has none with a random UUID, so
 * that retries of the call (by {@link retryInterceptor}, or anything else that repeats the
 * same request) never append twice. Keys the caller gives are kept.
 */
export function idempotencyKeyInterceptor(newKey: () => string = newIdempotencyKey): Interceptor {
  return (next) => async (req) => {
    if (req.stream || req.method.name !== "CreateEvent" || req.service.typeName !== "baton.v1.EventService") {
      return next(req);
    }
    const message = req.message as typeof req.message & { idempotencyKey?: string };
    if (message.idempotencyKey) return next(req);
    // A copy: the caller's request object is left as it was.
    const filled = { ...message, idempotencyKey: newKey() } as typeof req.message;
    return next({ ...req, message: filled });
  };
}
