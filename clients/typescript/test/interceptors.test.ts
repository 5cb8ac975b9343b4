// Client-side interceptors against Connect's in-memory router transport (no network): the
// idempotency key of CreateEvent, unary retries on UNAVAILABLE (with RetryInfo), bearer
// credentials (fixed, provider per call, provider cached until near expiry, refresh after
// UNAUTHENTICATED).
import assert from "node:assert/strict";
import { test } from "node:test";

import { createRouterTransport } from "@connectrpc/connect";
import type { Interceptor } from "@connectrpc/connect";

import {
  AgentService,
  BatonClient,
  Code,
  ConnectError,
  EventKind,
  EventService,
  EventSource,
  RetryInfoSchema,
  bearerAuth,
  idempotencyKeyInterceptor,
  retryInterceptor,
} from "../dist/index.js";

const message = {
  sessionId: "ses_1",
  kind: EventKind.MESSAGE,
  source: EventSource.CUSTOMER,
  data: { case: "message" as const, value: { text: "hi" } },
};

/** A client whose EventService.CreateEvent fails `failures` times with UNAVAILABLE. */
function eventsClient(interceptors: Interceptor[], failures = 0, retryInfo = false) {
  const keys: string[] = [];
  const transport = createRouterTransport(
    (router) => {
      router.service(EventService, {
        createEvent(req) {
          keys.push(req.idempotencyKey);
          if (keys.length <= failures) {
            throw new ConnectError(
              "shutting down",
              Code.Unavailable,
              undefined,
              retryInfo ? [{ desc: RetryInfoSchema, value: { retryDelay: { nanos: 150_000_000 } } }] : [],
            );
          }
          return { event: { sessionId: req.sessionId, offset: 1n } };
        },
      });
      router.service(AgentService, {
        createAgent() {
          keys.push("createAgent");
          throw new ConnectError("down", Code.Unavailable);
        },
      });
    },
    { transport: { interceptors } },
  );
  return { client: new BatonClient({ transport }), keys };
}

test("CreateEvent gets a UUID idempotency key when it has none", async () => {
  const { client, keys } = eventsClient([idempotencyKeyInterceptor()]);
  const request = { ...message };
  await client.events.createEvent(request);
  await client.events.createEvent(request);
  assert.match(keys[0]!, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.notEqual(keys[0], keys[1], "each call gets its own key");
  assert.equal((request as { idempotencyKey?: string }).idempotencyKey, undefined, "caller's object untouched");
});

test("a caller's idempotency key is kept", async () => {
  const { client, keys } = eventsClient([idempotencyKeyInterceptor()]);
  await client.events.createEvent({ ...message, idempotencyKey: "mine-1" });
  assert.deepEqual(keys, ["mine-1"]);
});

test("retries of CreateEvent on UNAVAILABLE reuse one idempotency key", async () => {
  const retries: number[] = [];
  const { client, keys } = eventsClient(
    [
      idempotencyKeyInterceptor(),
      retryInterceptor({ initialBackoffMs: 1, maxBackoffMs: 5, onRetry: (i) => retries.push(i.attempt) }),
    ],
    2,
  );
  const { event } = await client.events.createEvent(message);
  assert.equal(event?.offset, 1n);
  assert.equal(keys.length, 3);
  assert.equal(new Set(keys).size, 1, "same key on every attempt");
  assert.deepEqual(retries, [1, 2]);
});

test("without idempotency keys, CreateEvent is not retried (UNAVAILABLE may follow the append)", async () => {
  // idempotencyKeys: false leaves only the retry interceptor: a retry would append twice.
  const { client, keys } = eventsClient([retryInterceptor({ initialBackoffMs: 1 })], 1);
  await assert.rejects(client.events.createEvent(message), (e: unknown) => {
    return ConnectError.from(e).code === Code.Unavailable;
  });
  assert.deepEqual(keys, [""], "one attempt, no key");
});

test("a CreateEvent carrying the caller's own key is retried without the key interceptor", async () => {
  const { client, keys } = eventsClient([retryInterceptor({ initialBackoffMs: 1 })], 1);
  await client.events.createEvent({ ...message, idempotencyKey: "mine-2" });
  assert.deepEqual(keys, ["mine-2", "mine-2"]);
});

test("retries stop after maxAttempts and rethrow UNAVAILABLE", async () => {
  const { client, keys } = eventsClient(
    [idempotencyKeyInterceptor(), retryInterceptor({ maxAttempts: 3, initialBackoffMs: 1 })],
    10,
  );
  await assert.rejects(client.events.createEvent(message), (e: unknown) => {
    return ConnectError.from(e).code === Code.Unavailable;
  });
  assert.equal(keys.length, 3);
});

test("the server's RetryInfo delay is honoured", async () => {
  const delays: number[] = [];
  const { client } = eventsClient(
    [idempotencyKeyInterceptor(), retryInterceptor({ initialBackoffMs: 1, onRetry: (i) => delays.push(i.delayMs) })],
    1,
    true,
  );
  const t0 = Date.now();
  await client.events.createEvent(message);
  assert.deepEqual(delays, [150]);
  assert.ok(Date.now() - t0 >= 140, `waited ${Date.now() - t0} ms`);
});

test("calls not safe to repeat (CreateAgent) are not retried", async () => {
  const { client, keys } = eventsClient([retryInterceptor({ initialBackoffMs: 1 })]);
  await assert.rejects(client.agents.createAgent({ agent: { name: "a" } }));
  assert.deepEqual(keys, ["createAgent"]);
});

/** A client recording the authorization header; answers UNAUTHENTICATED to `reject`. */
function authClient(interceptor: Interceptor, reject = new Set<string>()) {
  const seen: string[] = [];
  const transport = createRouterTransport(
    (router) => {
      router.service(AgentService, {
        listAgents(_req, ctx) {
          const header = ctx.requestHeader.get("authorization") ?? "";
          seen.push(header);
          if (reject.has(header)) throw new ConnectError("expired", Code.Unauthenticated);
          return {};
        },
      });
    },
    { transport: { interceptors: [interceptor] } },
  );
  return { client: new BatonClient({ transport }), seen };
}

test("a fixed credential is sent as a bearer token", async () => {
  const { client, seen } = authClient(bearerAuth("bk_key_abc"));
  await client.agents.listAgents({});
  assert.deepEqual(seen, ["Bearer bk_key_abc"]);
});

test("a provider returning a string is asked on every call", async () => {
  let n = 0;
  const { client, seen } = authClient(bearerAuth(async () => `t${++n}`));
  await client.agents.listAgents({});
  await client.agents.listAgents({});
  assert.deepEqual(seen, ["Bearer t1", "Bearer t2"]);
});

test("an expiring token is cached until refreshBeforeMs before its expiry", async () => {
  let now = 1_000_000;
  let n = 0;
  const provider = async () => ({ token: `t${++n}`, expiresAt: now + 200_000 });
  const { client, seen } = authClient(bearerAuth(provider, { refreshBeforeMs: 30_000, now: () => now }));
  await client.agents.listAgents({});
  now += 160_000; // 40 s left: still fine
  await client.agents.listAgents({});
  now += 15_000; // 25 s left: renew
  await client.agents.listAgents({});
  assert.deepEqual(seen, ["Bearer t1", "Bearer t1", "Bearer t2"]);
});

test("a token living no longer than refreshBeforeMs is reused for 3/4 of its lifetime", async () => {
  let now = 1_000_000;
  let n = 0;
  // 20 s tokens, default refreshBeforeMs 60 s: renewed 5 s (a quarter) before expiry.
  const provider = async () => ({ token: `t${++n}`, expiresAt: now + 20_000 });
  const { client, seen } = authClient(bearerAuth(provider, { now: () => now }));
  await client.agents.listAgents({});
  now += 1_000;
  await client.agents.listAgents({});
  now += 13_900; // 14.9 s in: still cached
  await client.agents.listAgents({});
  now += 200; // 15.1 s in: renewed
  await client.agents.listAgents({});
  assert.deepEqual(seen, ["Bearer t1", "Bearer t1", "Bearer t1", "Bearer t2"]);
  assert.equal(n, 2);
});

test("concurrent calls share one provider call", async () => {
  let n = 0;
  const provider = async () => {
    n++;
    await new Promise((r) => setTimeout(r, 20));
    return { token: "shared", expiresAt: Date.now() + 3_600_000 };
  };
  const { client } = authClient(bearerAuth(provider));
  await Promise.all([1, 2, 3, 4].map(() => client.agents.listAgents({})));
  assert.equal(n, 1);
});

test("UNAUTHENTICATED drops the cached token and retries once with a fresh one", async () => {
  let n = 0;
  const provider = async () => ({ token: `t${++n}`, expiresAt: Date.now() + 3_600_000 });
  const { client, seen } = authClient(bearerAuth(provider), new Set(["Bearer t1"]));
  await client.agents.listAgents({});
  assert.deepEqual(seen, ["Bearer t1", "Bearer t2"]);
});

test("a fixed credential that is refused is not retried", async () => {
  const { client, seen } = authClient(bearerAuth("bad"), new Set(["Bearer bad"]));
  await assert.rejects(client.agents.listAgents({}), (e: unknown) => ConnectError.from(e).code === Code.Unauthenticated);
  assert.equal(seen.length, 1);
});
