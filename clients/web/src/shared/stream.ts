// Keeps a server stream open across network drops and server restarts: reconnects with
// jittered backoff, at once when the browser comes back online, and when the stream stays
// silent longer than two heartbeats (a half-open connection). The caller's `open` reads its
// resume point (offset, position) from its state on each attempt, so nothing is lost or
// repeated across reconnects.
import { Code, ConnectError } from "@connectrpc/connect";
import { backoffDelay } from "./backoff.js";
import { describeError, isTransient } from "./transport.js";

export type LinkState = "connecting" | "live" | "reconnecting" | "offline" | "failed";

export interface StreamOptions<T> {
  open(signal: AbortSignal): AsyncIterable<T>;
  onMessage(message: T): void;
  onState(state: LinkState, detail: string): void;
  /** Reconnect when nothing arrived for this long (server heartbeats come every 15 s). */
  stallMs?: number;
  /** Errors that end the stream for good (default: none but the non-transient ones). */
  fatal?: (error: unknown) => boolean;
  signal: AbortSignal;
}

export async function keepStreaming<T>(options: StreamOptions<T>): Promise<void> {
  const { signal } = options;
  const stallMs = options.stallMs ?? 40_000;
  let attempt = 0;
  while (!signal.aborted) {
    const attemptAbort = new AbortController();
    const stop = () => attemptAbort.abort();
    signal.addEventListener("abort", stop);
    const offline = () => attemptAbort.abort(new ConnectError("offline", Code.Unavailable));
    globalThis.addEventListener?.("offline", offline);
    let stall: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      clearTimeout(stall);
      stall = setTimeout(() => attemptAbort.abort(new ConnectError("stalled", Code.Unavailable)), stallMs);
    };
    try {
      options.onState(attempt === 0 ? "connecting" : "reconnecting", "");
      arm();
      let first = true;
      for await (const message of options.open(attemptAbort.signal)) {
        arm();
        if (first) {
          first = false;
          attempt = 0;
          options.onState("live", "");
        }
        options.onMessage(message);
      }
      // The server ended the stream (e.g. a restart): resume from where we are.
    } catch (error) {
      if (signal.aborted) return;
      const fatal = !isTransient(error) || (options.fatal?.(error) ?? false);
      if (fatal && !attemptAbort.signal.aborted) {
        options.onState("failed", describeError(error));
        return;
      }
    } finally {
      clearTimeout(stall);
      signal.removeEventListener("abort", stop);
      globalThis.removeEventListener?.("offline", offline);
    }
    if (signal.aborted) return;
    const online = typeof navigator === "undefined" || navigator.onLine !== false;
    options.onState(online ? "reconnecting" : "offline", "");
    await pause(online ? backoffDelay(attempt++) : 30_000, signal);
  }
}

/** Waits `ms`, less when the browser comes back online or the caller stops. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      globalThis.removeEventListener?.("online", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done);
    globalThis.addEventListener?.("online", done);
  });
}

/** Runs a unary call, retrying transient failures a few times (the call must be idempotent). */
export async function withRetry<T>(
  call: () => Promise<T>,
  attempts = 4,
  fatal: (error: unknown) => boolean = () => false,
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (attempt + 1 >= attempts || !isTransient(error) || fatal(error)) throw error;
      await new Promise((resolve) => setTimeout(resolve, backoffDelay(attempt)));
    }
  }
}
