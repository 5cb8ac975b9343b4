// A tiny element builder: text always goes in as text nodes (never HTML), so nothing a customer
// or an operator writes can inject markup.
type Child = Node | string | null | undefined | false;
type Attrs = Record<string, string | number | boolean | undefined | ((event: Event) => void)>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    if (typeof value === "function") element.addEventListener(name.replace(/^on/, ""), value);
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  append(element, ...children);
  return element;
}

export function append(parent: Node, ...children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
  }
}

export function clear(element: Element): void {
  while (element.firstChild) element.removeChild(element.firstChild);
}

const SVG = "http://www.w3.org/2000/svg";

export function svg(tag: string, attrs: Record<string, string | number> = {}, ...children: Child[]): SVGElement {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) element.setAttribute(name, String(value));
  append(element, ...children);
  return element;
}

export function formatTime(time: Date | undefined): string {
  return time ? time.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "";
}

let counter = 0;
/** A document-unique id for label/aria wiring. */
export function uid(prefix: string): string {
  counter += 1;
  return `${prefix}-${counter}`;
}

/**
 * Keeps a scrolling log pinned to its newest entry while the reader is at the bottom (also when
 * the log itself shrinks, e.g. when controls appear below it); a reader who scrolled up stays
 * where they are. Call the returned function after adding entries.
 */
export function pinToBottom(log: HTMLElement): () => void {
  let pinned = true;
  log.addEventListener("scroll", () => {
    pinned = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  });
  const pin = () => {
    if (pinned) log.scrollTop = log.scrollHeight;
  };
  if (typeof ResizeObserver !== "undefined") new ResizeObserver(pin).observe(log);
  return pin;
}
