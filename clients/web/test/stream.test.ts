// keepStreaming: reconnects after transient failures and a server that ends the stream,
// resuming from the caller's state; stops on fatal errors and when told to.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { keepStreaming, withRetry, type LinkState } from "../src/shared/stream.js";

test("a broken stream is reopened from where the caller is, until stopped", async () => {
  const stopper = new AbortController();
  let next = 0;
  const opened: number[] = [];
  const states: LinkState[] = [];
  const seen: number[] = [];
  await keepStreaming<number>({
    signal: stopper.signal,
    async *open() {
      const from = next;
      opened.push(from);
      if (opened.length === 1) throw new ConnectError("server restarting", Code.Unavailable);
      if (opened.length === 2) {
        yield from;
        return; // the server ended the stream: reopen
      }
      yield from;
      yield from + 1;
      stopper.abort();
    },
    onMessage(message) {
      seen.push(message);
      next = message + 1; // the resume point moves with what was delivered
    },
    onState(state) {
      states.push(state);
    },
  });
  assert.deepEqual(opened, [0, 0, 1]);
  assert.deepEqual(seen, [0, 1, 2]);
  assert.deepEqual(states.slice(0, 3), ["connecting", "reconnecting", "reconnecting"]);
  assert.ok(states.includes("live"));
});

test("a fatal error ends it with the server's words", async () => {
  const states: [LinkState, string][] = [];
  let attempts = 0;
  await keepStreaming<number>({
    signal: new AbortController().signal,
    async *open() {
      attempts++;
      throw new ConnectError("token expired", Code.Unauthenticated);
    },
    onMessage() {},
    onState(state, detail) {
      states.push([state, detail]);
    },
    fatal: (error) => ConnectError.from(error).code === Code.Unauthenticated,
  });
  assert.equal(attempts, 1);
  assert.deepEqual(states.at(-1), ["failed", "token expired"]);
});

test("withRetry retries what is transient, not what is the request's fault", async () => {
  let calls = 0;
  const value = await withRetry(async () => {
    calls++;
    if (calls < 2) throw new ConnectError("blip", Code.Unavailable);
    return "ok";
  });
  assert.equal(value, "ok");
  assert.equal(calls, 2);
  calls = 0;
  await assert.rejects(
    withRetry(async () => {
      calls++;
      throw new ConnectError("blank text", Code.InvalidArgument);
    }),
  );
  assert.equal(calls, 1);
});
