// follow with credentials from a provider, against a real HTTP/2 gRPC server on loopback
// (Connect's Node adapter playing Baton's EventService): a stream answered UNAUTHENTICATED
// drops the cached token and reconnects once with a fresh one; the allowance comes back only
// after a stream delivered something; fixed credentials are not retried.
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { test } from "node:test";

import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { HandlerContext } from "@connectrpc/connect";

import { BatonClient, Code, ConnectError, EventService } from "../dist/index.js";
import type { Credentials } from "../dist/index.js";

type Step = number | "unavailable" | "unauthenticated";

/** Serves ListEvents: stream i plays scripts[i] (events by offset, or an error), then stays open. */
async function withServer(
  scripts: Step[][],
  credentials: Credentials,
  run: (client: BatonClient, seen: string[]) => Promise<void>,
): Promise<void> {
  const seen: string[] = [];
  const server = http2.createServer(
    connectNodeAdapter({
      routes: (router) =>
        router.service(EventService, {
          async *listEvents(req, ctx: HandlerContext) {
            seen.push(ctx.requestHeader.get("authorization") ?? "");
            for (const step of scripts[seen.length - 1] ?? []) {
              if (step === "unavailable") throw new ConnectError("restarting", Code.Unavailable);
              if (step === "unauthenticated") throw new ConnectError("token revoked", Code.Unauthenticated);
              yield { events: [{ sessionId: req.sessionId, offset: BigInt(step) }] };
            }
            await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
          },
        }),
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const client = new BatonClient({ target: `127.0.0.1:${port}`, credentials });
  try {
    await run(client, seen);
  } finally {
    client.close();
    await new Promise((resolve) => server.close(resolve));
  }
}

/** A provider of t1, t2, ... valid for an hour (so cached until invalidated). */
function provider(): Credentials {
  let n = 0;
  return async () => ({ token: `t${++n}`, expiresAt: Date.now() + 3_600_000 });
}

const fast = { initialBackoffMs: 1, maxBackoffMs: 5 };

test("follow reconnects once with a fresh token on UNAUTHENTICATED, again after progress", async () => {
  const scripts: Step[][] = [
    [0, "unavailable"], // t1: restart
    ["unauthenticated"], // t1 (cached) refused on reconnect: fresh token
    [1, "unauthenticated"], // t2 delivered, then refused: allowed again
    [2], // t3
  ];
  await withServer(scripts, provider(), async (client, seen) => {
    const offsets: bigint[] = [];
    for await (const event of client.follow("ses_1", fast)) {
      offsets.push(event.offset);
      if (offsets.length === 3) break;
    }
    assert.deepEqual(offsets, [0n, 1n, 2n]);
    assert.deepEqual(seen, ["Bearer t1", "Bearer t1", "Bearer t2", "Bearer t3"]);
  });
});

test("a second UNAUTHENTICATED in a row is thrown", async () => {
  const scripts: Step[][] = [["unauthenticated"], ["unauthenticated"], [0]];
  await withServer(scripts, provider(), async (client, seen) => {
    await assert.rejects(
      (async () => {
        for await (const _ of client.follow("ses_1", fast)) assert.fail("nothing to deliver");
      })(),
      (e: unknown) => ConnectError.from(e).code === Code.Unauthenticated,
    );
    assert.deepEqual(seen, ["Bearer t1", "Bearer t2"]);
  });
});

test("fixed credentials refused on a stream are thrown at once", async () => {
  await withServer([["unauthenticated"], [0]], "bk_key_bad", async (client, seen) => {
    await assert.rejects(
      (async () => {
        for await (const _ of client.follow("ses_1", fast)) assert.fail("nothing to deliver");
      })(),
      (e: unknown) => ConnectError.from(e).code === Code.Unauthenticated,
    );
    assert.deepEqual(seen, ["Bearer bk_key_bad"]);
  });
});
