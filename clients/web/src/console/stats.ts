// The console's stats page: GetHandoffStats over a chosen range, as figures and small SVG bar
// charts (each with a text alternative).
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Client } from "@connectrpc/connect";
import type { HandoffService } from "../gen/baton/v1/service_pb.js";
import { formatDuration, percent, seconds, statsCharts, type Bar } from "../shared/charts.js";
import { clear, h, svg, uid } from "../shared/dom.js";
import { describeError } from "../shared/transport.js";

export class StatsPage {
  readonly element: HTMLElement;
  private readonly body: HTMLElement;
  private readonly range: HTMLSelectElement;

  constructor(private readonly handoffs: Client<typeof HandoffService>) {
    const rangeId = uid("bc-range");
    this.range = h(
      "select",
      { id: rangeId, onchange: () => void this.load() },
      h("option", { value: "1" }, "Last 24 hours"),
      h("option", { value: "7", selected: true }, "Last 7 days"),
      h("option", { value: "30" }, "Last 30 days"),
    );
    this.body = h("div", { class: "bc-stats-body", "aria-live": "polite" });
    this.element = h(
      "section",
      { class: "bc-stats", "aria-labelledby": "bc-stats-title" },
      h(
        "div",
        { class: "bc-stats-head" },
        h("h2", { id: "bc-stats-title", tabindex: -1 }, "Handoff stats"),
        h("label", { for: rangeId }, "Range "),
        this.range,
        h("button", { type: "button", onclick: () => void this.load() }, "Refresh"),
      ),
      this.body,
    );
  }

  async load(): Promise<void> {
    const days = Number(this.range.value);
    this.element.dataset["loading"] = "true";
    try {
      const { stats } = await this.handoffs.getHandoffStats({
        startTime: timestampFromDate(new Date(Date.now() - days * 86_400_000)),
      });
      clear(this.body);
      if (!stats) return;
      const charts = statsCharts(stats);
      const claim = stats.timeToClaim;
      this.body.append(
        h(
          "dl",
          { class: "bc-figures" },
          figure("Handoff rate", percent(stats.handoffRate)),
          figure("Handoffs", String(stats.handoffs)),
          figure("Time to claim (p50)", claim && claim.count > 0n ? formatDuration(seconds(claim.p50)) : "–"),
          figure("Returned to AI", percent(stats.returnedToAiShare)),
          figure("Abandoned while queued", String(stats.abandonedWhileQueued)),
          figure("Re-handoffs within 30 min", String(stats.rehandoffsWithin30Minutes)),
        ),
        chart("Sessions and handoff rate", charts.rate),
        chart("Reasons", charts.reasons),
        chart("Time to claim", charts.timeToClaim),
        chart("Time to first human reply", charts.timeToReply),
        chart("Outcomes", charts.outcomes),
      );
    } catch (error) {
      clear(this.body);
      this.body.append(h("p", { class: "bc-error", role: "alert" }, describeError(error)));
    } finally {
      this.element.dataset["loading"] = "false";
    }
  }
}

function figure(label: string, value: string): HTMLElement {
  return h("div", { class: "bc-figure" }, h("dt", {}, label), h("dd", {}, value));
}

const ROW = 26;
const LABEL_W = 170;
const WIDTH = 460;

/** A horizontal bar chart; its aria-label carries the same figures as text. */
function chart(title: string, data: readonly Bar[]): HTMLElement {
  const figureEl = h("figure", { class: "bc-chart" }, h("figcaption", {}, title));
  if (data.length === 0) {
    figureEl.append(h("p", { class: "bc-empty" }, "No data in this range."));
    return figureEl;
  }
  const height = data.length * ROW + 4;
  const barSpace = WIDTH - LABEL_W - 90;
  const graphic = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${height}`,
    width: "100%",
    role: "img",
    "aria-label": `${title}: ${data.map((bar) => `${bar.label} ${bar.display}`).join(", ")}`,
  });
  data.forEach((bar, row) => {
    const y = row * ROW + 2;
    graphic.append(
      svg("text", { x: LABEL_W - 8, y: y + 16, "text-anchor": "end", class: "bc-chart-label" }, truncate(bar.label, 24)),
      svg("rect", {
        x: LABEL_W,
        y: y + 3,
        width: Math.max(2, Math.round(bar.share * barSpace)),
        height: ROW - 8,
        rx: 3,
        class: "bc-chart-bar",
      }),
      svg("text", { x: LABEL_W + Math.max(2, bar.share * barSpace) + 6, y: y + 16, class: "bc-chart-value" }, bar.display),
    );
  });
  figureEl.append(graphic);
  return figureEl;
}

function truncate(text: string, length: number): string {
  return text.length > length ? `${text.slice(0, length - 1)}…` : text;
}
