// watchHandoffs' resume logic against Connect's in-memory router transport, which plays a
// server whose streams break: a snapshot cut before caught_up is taken again (nothing
// delivered twice), a resume asks for after_position = the last delivered position, and a
// change the server sends again is dropped. (The real server and restart: smoke.sh.)
import assert from "node:assert/strict";
import { test } from "node:test";

import { create } from "@bufbuild/protobuf";
import { createRouterTransport } from "@connectrpc/connect";

import {
  BatonClient,
  Code,
  ConnectError,
  HandoffChangeSchema,
  HandoffChangeType,
  HandoffService,
} from "../dist/index.js";
import type { HandoffChange, WatchHandoffsResponseSchema } from "../dist/index.js";
import type { MessageInitShape } from "@bufbuild/protobuf";

type Reply = MessageInitShape<typeof WatchHandoffsResponseSchema>;

const change = (position: number, id: string, type = HandoffChangeType.REQUESTED): HandoffChange =>
  create(HandoffChangeSchema, { position: BigInt(position), type, handoff: { id } });

test("watchHandoffs resumes exactly once across broken streams", async () => {
  const requests: (bigint | undefined)[] = [];
  const streams: Array<Array<Reply | "fail" | "end">> = [
    // 1: the snapshot breaks before caught_up: nothing of it may be delivered yet.
    [{ changes: [change(5, "a", HandoffChangeType.OPEN)] }, "fail"],
    // 2: snapshot (two OPEN at 6), a change during it, caught_up, a live change, break.
    [
      { changes: [change(6, "a", HandoffChangeType.OPEN), change(6, "b", HandoffChangeType.OPEN)] },
      { changes: [change(7, "c")] },
      { caughtUp: true, caughtUpPosition: 7n },
      { changes: [change(8, "a", HandoffChangeType.CLAIMED)] },
      "fail",
    ],
    // 3: resumes after 8; the server repeats 8 (dropped), sends 9, a heartbeat, then ends.
    [
      { changes: [change(8, "a", HandoffChangeType.CLAIMED), change(9, "b", HandoffChangeType.CLAIMED)] },
      { caughtUp: true, caughtUpPosition: 9n },
      { heartbeat: { position: 12n } },
      "end",
    ],
    // 4: resumes after the heartbeat's 12.
    [{ caughtUp: true, caughtUpPosition: 12n }, { changes: [change(13, "c", HandoffChangeType.ENDED)] }],
  ];
  const transport = createRouterTransport((router) => {
    router.service(HandoffService, {
      async *watchHandoffs(req) {
        requests.push(req.afterPosition);
        const script = streams[requests.length - 1] ?? [];
        for (const item of script) {
          if (item === "fail") throw new ConnectError("restarting", Code.Unavailable);
          if (item === "end") return;
          yield item;
        }
        await new Promise(() => {}); // stays open, like a live stream
      },
    });
  });
  const client = new BatonClient({ transport });
  const stop = new AbortController();
  const got: string[] = [];
  const reconnects: (bigint | undefined)[] = [];
  for await (const c of client.watchHandoffs({
    signal: stop.signal,
    initialBackoffMs: 1,
    maxBackoffMs: 2,
    onReconnect: (i) => reconnects.push(i.afterPosition),
  })) {
    got.push(`${c.position}:${c.handoff?.id}:${HandoffChangeType[c.type]}`);
    if (c.position === 13n) stop.abort();
  }
  assert.deepEqual(got, [
    "6:a:OPEN",
    "6:b:OPEN",
    "7:c:REQUESTED",
    "8:a:CLAIMED",
    "9:b:CLAIMED",
    "13:c:ENDED",
  ]);
  assert.deepEqual(requests, [undefined, undefined, 8n, 12n]);
  assert.deepEqual(reconnects, [undefined, 8n, 12n]);
});

test("watchHandoffs throws errors that are not worth a reconnect", async () => {
  const transport = createRouterTransport((router) => {
    router.service(HandoffService, {
      // eslint-disable-next-line require-yield
      async *watchHandoffs() {
        throw new ConnectError("not your inbox", Code.PermissionDenied);
      },
    });
  });
  const client = new BatonClient({ transport });
  await assert.rejects(
    (async () => {
      for await (const _ of client.watchHandoffs({ initialBackoffMs: 1 })) void _;
    })(),
    (e: unknown) => ConnectError.from(e).code === Code.PermissionDenied,
  );
});
