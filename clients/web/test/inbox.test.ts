// The console's inbox reducer: snapshot then live changes, each once, ended ones dropped.
import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { HandoffChangeSchema, HandoffChangeType, HandoffState, type HandoffChange } from "../src/gen/baton/v1/message_pb.js";
import { WatchHandoffsResponseSchema } from "../src/gen/baton/v1/request_response_pb.js";
import { applyInboxResponse, initialInbox, inboxLists, markRead, queuePlaces } from "../src/shared/inbox.js";

function change(position: number, type: HandoffChangeType, id: string, state: HandoffState, requested = 0): HandoffChange {
  return create(HandoffChangeSchema, {
    position: BigInt(position),
    type,
    handoff: { id, sessionId: `s-${id}`, state, requestedAt: { seconds: BigInt(requested), nanos: 0 } },
  });
}

test("snapshot, caught_up, then live changes; replays of handled positions are ignored", () => {
  let inbox = applyInboxResponse(
    initialInbox,
    create(WatchHandoffsResponseSchema, {
      changes: [
        change(10, HandoffChangeType.OPEN, "b", HandoffState.PENDING, 20),
        change(10, HandoffChangeType.OPEN, "a", HandoffState.PENDING, 10),
        change(10, HandoffChangeType.OPEN, "c", HandoffState.CLAIMED, 5),
      ],
    }),
  );
  assert.equal(inbox.caughtUp, false);
  assert.equal(inbox.position, undefined, "snapshot entries do not set the resume point");
  inbox = applyInboxResponse(inbox, create(WatchHandoffsResponseSchema, { caughtUp: true, caughtUpPosition: 10n }));
  assert.equal(inbox.position, 10n);
  let lists = inboxLists(inbox);
  assert.deepEqual(lists.pending.map((h) => h.id), ["a", "b"], "queue order: oldest request first");
  assert.deepEqual(lists.claimed.map((h) => h.id), ["c"]);

  inbox = applyInboxResponse(
    inbox,
    create(WatchHandoffsResponseSchema, {
      changes: [
        change(11, HandoffChangeType.CLAIMED, "a", HandoffState.CLAIMED, 10),
        change(12, HandoffChangeType.ENDED, "c", HandoffState.ENDED, 5),
        change(13, HandoffChangeType.REQUESTED, "d", HandoffState.PENDING, 30),
      ],
    }),
  );
  // A reconnect that replays position 12 (already handled) must not resurrect "c".
  inbox = applyInboxResponse(
    inbox,
    create(WatchHandoffsResponseSchema, { changes: [change(12, HandoffChangeType.CLAIMED, "c", HandoffState.CLAIMED, 5)] }),
  );
  lists = inboxLists(inbox);
  assert.deepEqual(lists.pending.map((h) => h.id), ["b", "d"]);
  assert.deepEqual(lists.claimed.map((h) => h.id), ["a"]);
  assert.equal(inbox.position, 13n);
  assert.ok(inbox.unread.has("d"));
  inbox = markRead(inbox, "d");
  assert.ok(!inbox.unread.has("d"));
  inbox = applyInboxResponse(inbox, create(WatchHandoffsResponseSchema, { heartbeat: { position: 20n } }));
  assert.equal(inbox.position, 20n);
});

test("queue places: the server's when given, else the rank per agent in request order", () => {
  const pending = [
    create(HandoffChangeSchema, { handoff: { id: "a", agentId: "x", queuePosition: 0 } }).handoff!,
    create(HandoffChangeSchema, { handoff: { id: "b", agentId: "y", queuePosition: 0 } }).handoff!,
    create(HandoffChangeSchema, { handoff: { id: "c", agentId: "x", queuePosition: 0 } }).handoff!,
    create(HandoffChangeSchema, { handoff: { id: "d", agentId: "x", queuePosition: 7 } }).handoff!,
  ];
  assert.deepEqual([...queuePlaces(pending)], [["a", 1], ["b", 1], ["c", 2], ["d", 7]]);
});
