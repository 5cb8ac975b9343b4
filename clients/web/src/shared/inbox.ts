// The operator inbox, built from WatchHandoffs responses by a pure reducer: the snapshot of
// open handoffs (until `caught_up`), then live changes, each applied once (a console that
// reconnects with `after_position` = `position` gets every missed change exactly once).
import {
  HandoffChangeType,
  HandoffState,
  type Handoff,
  type HandoffChange,
} from "../gen/baton/v1/message_pb.js";
import type { WatchHandoffsResponse } from "../gen/baton/v1/request_response_pb.js";

export interface InboxState {
  /** Open handoffs (PENDING or CLAIMED) by id. */
  readonly open: ReadonlyMap<string, Handoff>;
  /** Last position handled: resume with `after_position` set to it (undefined: snapshot). */
  readonly position: bigint | undefined;
  readonly caughtUp: boolean;
  /** Handoffs that changed since the console last looked at them (new, customer wrote). */
  readonly unread: ReadonlySet<string>;
}

export const initialInbox: InboxState = {
  open: new Map(),
  position: undefined,
  caughtUp: false,
  unread: new Set(),
};

export function applyInboxResponse(state: InboxState, response: WatchHandoffsResponse): InboxState {
  let next = state;
  for (const change of response.changes) next = applyChange(next, change);
  if (response.caughtUp) {
    next = { ...next, caughtUp: true, position: max(next.position, response.caughtUpPosition) };
  }
  if (response.heartbeat) next = { ...next, position: max(next.position, response.heartbeat.position) };
  return next;
}

export function applyChange(state: InboxState, change: HandoffChange): InboxState {
  const live = change.type !== HandoffChangeType.OPEN;
  // Snapshot entries share the position they reflect; live changes are strictly increasing.
  if (live && state.position !== undefined && change.position <= state.position) return state;
  const handoff = change.handoff;
  if (!handoff) return state;
  const open = new Map(state.open);
  const unread = new Set(state.unread);
  if (handoff.state === HandoffState.ENDED || change.type === HandoffChangeType.ENDED) {
    open.delete(handoff.id);
    unread.delete(handoff.id);
  } else {
    open.set(handoff.id, handoff);
    if (
      change.type === HandoffChangeType.REQUESTED ||
      change.type === HandoffChangeType.CUSTOMER_MESSAGE
    ) {
      unread.add(handoff.id);
    }
  }
  return {
    ...state,
    open,
    unread,
    position: live ? max(state.position, change.position) : state.position,
  };
}

export function markRead(state: InboxState, handoffId: string): InboxState {
  if (!state.unread.has(handoffId)) return state;
  const unread = new Set(state.unread);
  unread.delete(handoffId);
  return { ...state, unread };
}

/** Pending first (oldest request first: the queue order), then claimed. */
export function inboxLists(state: InboxState): { pending: Handoff[]; claimed: Handoff[] } {
  const byRequest = (a: Handoff, b: Handoff) =>
    Number((a.requestedAt?.seconds ?? 0n) - (b.requestedAt?.seconds ?? 0n)) ||
    (a.requestedAt?.nanos ?? 0) - (b.requestedAt?.nanos ?? 0);
  const all = [...state.open.values()];
  return {
    pending: all.filter((h) => h.state === HandoffState.PENDING).sort(byRequest),
    claimed: all.filter((h) => h.state === HandoffState.CLAIMED).sort(byRequest),
  };
}

/**
 * Each waiting handoff's place in its agent's queue: the server's `queue_position` when the
 * change carries one, else its rank among the agent's pending handoffs by request time (the
 * queue's order).
 */
export function queuePlaces(pending: readonly Handoff[]): Map<string, number> {
  const places = new Map<string, number>();
  const perAgent = new Map<string, number>();
  for (const handoff of pending) {
    const rank = (perAgent.get(handoff.agentId) ?? 0) + 1;
    perAgent.set(handoff.agentId, rank);
    places.set(handoff.id, handoff.queuePosition > 0 ? handoff.queuePosition : rank);
  }
  return places;
}

function max(a: bigint | undefined, b: bigint): bigint {
  return a === undefined || b > a ? b : a;
}
