// Chart data from GetHandoffStats, as plain numbers (drawn as small SVGs by the console; no
// chart library: four bar charts do not need one). Pure: unit-tested under node.
import type { Duration } from "@bufbuild/protobuf/wkt";
import type { HandoffStats } from "../gen/baton/v1/message_pb.js";

export interface Bar {
  readonly label: string;
  readonly value: number;
  /** Text printed next to the bar. */
  readonly display: string;
  /** Length as a share of the longest bar, 0..1. */
  readonly share: number;
}

export function bars(entries: readonly (readonly [string, number, string?])[]): Bar[] {
  const top = Math.max(0, ...entries.map(([, value]) => value));
  return entries.map(([label, value, display]) => ({
    label,
    value,
    display: display ?? String(value),
    share: top > 0 ? value / top : 0,
  }));
}

export function seconds(duration: Duration | undefined): number {
  return duration ? Number(duration.seconds) + duration.nanos / 1e9 : 0;
}

/** "45 s", "3.5 min", "2.1 h". */
export function formatDuration(s: number): string {
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 90 * 60) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

export function percent(share: number): string {
  return `${(share * 100).toFixed(share > 0 && share < 0.1 ? 1 : 0)} %`;
}

export interface StatsCharts {
  readonly rate: Bar[];
  readonly reasons: Bar[];
  readonly outcomes: Bar[];
  readonly timeToClaim: Bar[];
  readonly timeToReply: Bar[];
}

/** The console's charts: at most `maxReasons` reasons, most frequent first, the rest summed. */
export function statsCharts(stats: HandoffStats, maxReasons = 8): StatsCharts {
  const reasons = Object.entries(stats.byReason)
    .map(([reason, count]) => [reason || "(none)", Number(count)] as const)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const shown = reasons.slice(0, maxReasons);
  const rest = reasons.slice(maxReasons).reduce((sum, [, count]) => sum + count, 0);
  if (rest > 0) shown.push(["other reasons", rest]);
  const outcomes = Object.entries(stats.byOutcome)
    .map(([outcome, count]) => [outcome.replaceAll("_", " ").toLowerCase(), Number(count)] as const)
    .sort((a, b) => b[1] - a[1]);
  const claim = stats.timeToClaim;
  const reply = stats.timeToFirstHumanReply;
  const p = (d: Duration | undefined) => [seconds(d), formatDuration(seconds(d))] as const;
  return {
    rate: bars([
      ["sessions", Number(stats.sessions)],
      [
        "with a handoff",
        Number(stats.sessionsWithHandoff),
        `${Number(stats.sessionsWithHandoff)} (${percent(stats.handoffRate)})`,
      ],
    ]),
    reasons: bars(shown),
    outcomes: bars(outcomes),
    timeToClaim: claim && claim.count > 0n ? bars([["p50", ...p(claim.p50)], ["p90", ...p(claim.p90)]]) : [],
    timeToReply: reply && reply.count > 0n ? bars([["p50", ...p(reply.p50)], ["p90", ...p(reply.p90)]]) : [],
  };
}
