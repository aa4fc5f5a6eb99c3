// The ladder (sequence) diagram of GET /api/ladder as inline SVG: a lane per peer and one
// for the responder, one arrow per message in time order. Each kind of message differs by
// more than colour: line style (dashed provisional, dotted ACK, dash-dot retransmission),
// the arrow head (filled, open, round, cross), an icon and a word in the label. An arrow
// is a frame on the wire: a response sent again (Timer G, a retransmitted request
// answered again) is an arrow of its own, drawn as a retransmission.

import { h, s, clear } from "./dom.js";

const MIN_GAP = 140; // px between lifelines: room for a lane's address (labels may run past)
const SIDE = 86; // px left of the first lifeline and right of the last: half a lane box, a badge
const MAX_GAP = 340;
const CHAR_W = 7;
const BADGE_W = 98; // px: the outcome badge (icon and word)
const RIGHT_HAND_PEERS = 2; // up to this many peer lanes, the responder's lane is the last // px, about one character of the 12px label font
const TIME_COL = 100; // px for the timestamp column on the left
const HEAD_H = 50; // px for the lane header boxes
const ROW_H = 38; // px per arrow
const SEP_H = 24; // px for the line and Call-ID where a new call starts
const MARGIN = 24;

// What each class means to a reader, shown after the label and in the legend.
export const CLASS_WORDS = {
  request: "request",
  provisional: "provisional",
  success: "success",
  redirect: "redirect",
  "client-error": "client error",
  "server-error": "server error",
  "global-error": "global error",
  absorbed: "ACK absorbed",
  retransmission: "retransmission",
  rejected: "rejected",
};

const OUTCOME_WORDS = {
  "not-answered": "no answer",
  cancelled: "cancelled",
  dropped: "dropped",
  fault: "fault",
  rejected: "rejected",
};

// The arrow head marker of each class: its shape tells final from provisional from error.
const HEAD_OF = {
  request: "filled",
  provisional: "open",
  success: "filled",
  redirect: "open",
  "client-error": "bar",
  "server-error": "bar",
  "global-error": "bar",
  absorbed: "dot",
  retransmission: "open",
  rejected: "cross",
};

// The stylesheet travels inside the SVG, so a downloaded ladder renders alone. Colours are
// CSS variables with light-theme fallbacks: in the page they follow the theme, standalone
// they are the fallbacks.
export const LADDER_CSS = `
.ladder { font-family: "DejaVu Sans", "Liberation Sans", system-ui, sans-serif; font-size: 12px; }
.ladder .bg { fill: var(--ladder-bg, #ffffff); }
.ladder .lane-box { fill: var(--lane-bg, #eef2f7); stroke: var(--lane-line, #8a96a8); stroke-width: 1; }
.ladder .lane-box.responder { fill: var(--responder-bg, #dde8f8); stroke: var(--accent, #1d5fbf); stroke-width: 1.5; }
.ladder .lane-title { fill: var(--fg, #1b2330); font-weight: 600; text-anchor: middle; }
.ladder .lane-sub { fill: var(--muted, #5b6778); font-size: 11px; text-anchor: middle; }
.ladder .lifeline { stroke: var(--lane-line, #8a96a8); stroke-width: 1; stroke-dasharray: 2 4; }
.ladder .time { fill: var(--muted, #5b6778); font-family: "DejaVu Sans Mono", monospace; font-size: 11px; }
.ladder .delta { fill: var(--muted, #5b6778); font-family: "DejaVu Sans Mono", monospace; font-size: 10px; }
.ladder .row-hit { fill: transparent; }
.ladder .arrow { cursor: pointer; outline: none; }
.ladder .arrow:hover .row-hit, .ladder .arrow:focus .row-hit { fill: var(--hover, rgba(29, 95, 191, 0.10)); }
.ladder .arrow.selected .row-hit { fill: var(--selected, rgba(29, 95, 191, 0.18)); }
.ladder .arrow:focus-visible .row-hit { stroke: var(--accent, #1d5fbf); stroke-width: 1.5; }
.ladder .line { fill: none; stroke-width: 1.6; }
.ladder .label { font-size: 12px; fill: var(--fg, #1b2330); paint-order: stroke; stroke: var(--ladder-bg, #ffffff); stroke-width: 4px; stroke-linejoin: round; }
.ladder .label .word { font-size: 10px; fill: var(--muted, #5b6778); font-style: italic; }
.ladder .request .line { stroke: var(--c-request, #1b2330); }
.ladder .request .label { font-weight: 600; }
.ladder .provisional .line { stroke: var(--c-provisional, #6b7685); stroke-dasharray: 7 5; }
.ladder .success .line { stroke: var(--c-success, #1d7a35); stroke-width: 2; }
.ladder .redirect .line { stroke: var(--c-redirect, #7a4fbf); stroke-dasharray: 12 3 2 3; }
.ladder .client-error .line, .ladder .server-error .line, .ladder .global-error .line { stroke: var(--c-error, #c0262d); stroke-width: 2.6; }
.ladder .absorbed .line { stroke: var(--c-absorbed, #6b7685); stroke-dasharray: 2 3; }
.ladder .retransmission .line { stroke: var(--c-retrans, #975a00); stroke-dasharray: 9 3 2 3; }
.ladder .rejected .line { stroke: var(--c-error, #c0262d); stroke-dasharray: 4 2; stroke-width: 2; }
.ladder .success .label { fill: var(--c-success, #1d7a35); }
.ladder .client-error .label, .ladder .server-error .label, .ladder .global-error .label, .ladder .rejected .label { fill: var(--c-error, #c0262d); font-weight: 600; }
.ladder .retransmission .label { fill: var(--c-retrans, #975a00); }
.ladder .head-filled { stroke: none; }
.ladder .head-open { fill: none; stroke-width: 1.6; }
.ladder .icon { fill: none; stroke-width: 1.8; stroke-linecap: round; stroke-linejoin: round; }
.ladder .icon-bg { stroke: none; }
.ladder .badge rect { stroke-width: 1.2; }
.ladder .badge text { font-size: 10px; font-weight: 700; text-anchor: middle; }
.ladder .badge.warn rect { fill: var(--badge-warn-bg, #fff1d6); stroke: var(--c-retrans, #975a00); }
.ladder .badge.warn text { fill: var(--c-retrans, #8a5200); }
.ladder .badge.bad rect { fill: var(--badge-bad-bg, #fde3e4); stroke: var(--c-error, #c0262d); }
.ladder .badge.bad text { fill: var(--c-error, #c0262d); }
.ladder .call-sep { stroke: var(--lane-line, #8a96a8); stroke-width: 1; }
.ladder .call-title { fill: var(--muted, #5b6778); font-size: 11px; font-weight: 600; }
`;

const COLOR_VAR = {
  request: "var(--c-request, #1b2330)",
  provisional: "var(--c-provisional, #6b7685)",
  success: "var(--c-success, #1d7a35)",
  redirect: "var(--c-redirect, #7a4fbf)",
  "client-error": "var(--c-error, #c0262d)",
  "server-error": "var(--c-error, #c0262d)",
  "global-error": "var(--c-error, #c0262d)",
  absorbed: "var(--c-absorbed, #6b7685)",
  retransmission: "var(--c-retrans, #975a00)",
  rejected: "var(--c-error, #c0262d)",
};

function markerDefs() {
  const defs = s("defs", {});
  for (const [cls, shape] of Object.entries(HEAD_OF)) {
    const color = COLOR_VAR[cls];
    const marker = s("marker", {
      id: `head-${cls}`, viewBox: "0 0 12 12", refX: shape === "dot" ? 6 : 11, refY: 6,
      markerWidth: 11, markerHeight: 11, orient: "auto-start-reverse", markerUnits: "userSpaceOnUse",
    });
    if (shape === "filled") {
      marker.append(s("path", { d: "M0,1 L12,6 L0,11 z", class: "head-filled", style: `fill: ${color}` }));
    } else if (shape === "open") {
      marker.append(s("path", { d: "M1,1 L11,6 L1,11", class: "head-open", style: `stroke: ${color}` }));
    } else if (shape === "bar") {
      // filled head and a bar across it: a final error answer
      marker.append(s("path", { d: "M0,1 L10,6 L0,11 z", class: "head-filled", style: `fill: ${color}` }));
      marker.append(s("path", { d: "M11,0 L11,12", class: "head-open", style: `stroke: ${color}; stroke-width: 2` }));
    } else if (shape === "dot") {
      marker.append(s("circle", { cx: 6, cy: 6, r: 4, class: "head-open", style: `stroke: ${color}; fill: var(--ladder-bg, #ffffff)` }));
    } else if (shape === "cross") {
      marker.append(s("path", { d: "M1,1 L11,11 M11,1 L1,11", class: "head-open", style: `stroke: ${color}; stroke-width: 2.2` }));
    }
    defs.append(marker);
  }
  return defs;
}

/** A small icon (drawn, not a font glyph) at (x, y) for an arrow class or an outcome. */
function icon(kind, x, y) {
  const g = s("g", { transform: `translate(${x},${y})`, class: "icon-wrap" });
  const color = COLOR_VAR[kind] || "var(--c-error, #c0262d)";
  const stroke = `stroke: ${color}`;
  const paths = {
    success: "M-4,0 L-1,3 L4,-3", // check
    "client-error": "M-3,-3 L3,3 M3,-3 L-3,3", // cross
    "server-error": "M-3,-3 L3,3 M3,-3 L-3,3",
    "global-error": "M-3,-3 L3,3 M3,-3 L-3,3",
    redirect: "M-3,2 L-3,-2 L3,-2 M1,-4 L3,-2 L1,0", // bent arrow
    retransmission: "M3,-1 A3.5,3.5 0 1 1 0,-3.5 M0,-5.5 L0.5,-3.5 L-1.5,-2.5", // circular arrow
    absorbed: "M-3,0 L3,0", // minus: taken in, no answer expected
    provisional: "M-3,0 L-2.9,0 M0,0 L0.1,0 M3,0 L3.1,0", // dots: more to come
    rejected: "M-3,-3 L3,3 M3,-3 L-3,3",
    fault: "M1,-5 L-2,0.5 L1.5,0.5 L-1,5", // lightning
    "not-answered": "M0,-3 L0,0.5 L2.5,2", // clock hands
    cancelled: "M-2.5,-2.5 L2.5,-2.5 L2.5,2.5 L-2.5,2.5 Z", // stop
    dropped: "M-3,-3 L3,3 M3,-3 L-3,3",
  };
  if (!paths[kind]) return null;
  g.append(s("circle", { r: 7, class: "icon-bg", style: `fill: var(--ladder-bg, #ffffff); stroke: ${color}; stroke-width: 1.2` }));
  g.append(s("path", { d: paths[kind], class: "icon", style: stroke }));
  if (kind === "not-answered") g.append(s("circle", { r: 4.5, class: "icon", style: stroke }));
  return g;
}

export function formatSeconds(seconds) {
  if (seconds < 1) return `${(seconds * 1000).toFixed(seconds < 0.01 ? 1 : 0)} ms`;
  return `${seconds.toFixed(3)} s`;
}

function truncate(text, max) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/**
 * Draw the ladder model into `container` (cleared first). `onSelect(arrow)` runs when an
 * arrow is clicked or Enter/Space is pressed on it. Returns the <svg>.
 */
export function drawLadder(container, model, { onSelect, selectedId, showTimes = true, fitWidth = 0, startClock = "", title = "", stickyHeader = false, laneNotes = {} } = {}) {
  clear(container);
  const lanes = model.lanes || [];
  const arrows = model.arrows || [];
  const laneX = new Map();
  // With a peer or two the responder's lane is on the right (client left, server right, as
  // RFC ladder diagrams read); with more it comes first, next to the times, so that every
  // arrow starts or ends in view and the far peers are a horizontal scroll away.
  const peers = lanes.filter((l) => l.kind !== "responder");
  const responders = lanes.filter((l) => l.kind === "responder");
  const ordered = peers.length <= RIGHT_HAND_PEERS ? [...peers, ...responders] : [...responders, ...peers];
  // The lanes spread over the width there is (fitWidth), within bounds that keep labels readable.
  const fixed = TIME_COL + MARGIN * 2 + 2 * SIDE;
  const spans = Math.max(1, ordered.length - 1);
  const gap = Math.round(Math.min(MAX_GAP, Math.max(MIN_GAP, ((fitWidth || 0) - fixed) / spans)));
  ordered.forEach((lane, i) => laneX.set(lane.id, TIME_COL + MARGIN + SIDE + i * gap));
  const width = fixed + spans * gap;
  const geometry = { laneX, width, gap, labelChars: Math.floor((gap - 16) / CHAR_W), responderX: laneX.get("responder") };

  // Where a new call starts, a separator row with its Call-ID.
  const rows = [];
  let lastCall = null;
  const multiCall = new Set(arrows.map((a) => a.call_id)).size > 1;
  for (const arrow of arrows) {
    if (multiCall && arrow.call_id !== lastCall) rows.push({ separator: arrow.call_id });
    lastCall = arrow.call_id;
    rows.push({ arrow });
  }
  const height = HEAD_H + MARGIN * 2 + rows.reduce((sum, row) => sum + (row.arrow ? ROW_H : SEP_H), 0) + 10;
  const svg = s("svg", {
    xmlns: "http://www.w3.org/2000/svg", class: "ladder", width, height,
    viewBox: `0 0 ${width} ${height}`, role: "group",
    "aria-label": `Ladder diagram: ${arrows.length} messages between ${ordered.length} lanes`,
  });
  svg.append(s("title", {}, title || `sipresponder ladder: ${arrows.length} messages`));
  svg.append(s("style", {}, LADDER_CSS));
  svg.append(markerDefs());
  svg.append(s("rect", { class: "bg", x: 0, y: 0, width, height }));

  const top = MARGIN;
  const bottom = height - MARGIN / 2;
  for (const lane of ordered) {
    const x = laneX.get(lane.id);
    const responder = lane.kind === "responder";
    const [name, sub] = splitLaneLabel(lane, responder, laneNotes[lane.id]);
    const g = s("g", { class: `lane ${responder ? "responder" : "peer"}`, "data-lane": lane.id });
    g.append(s("line", { class: "lifeline", x1: x, y1: top + HEAD_H - 6, x2: x, y2: bottom }));
    const boxW = Math.min(2 * SIDE + 20, gap - 12);
    g.append(s("rect", { class: `lane-box ${responder ? "responder" : ""}`, x: x - boxW / 2, y: top, width: boxW, height: HEAD_H - 10, rx: 6 }));
    g.append(s("text", { class: "lane-title", x, y: top + 17 }, truncate(name, Math.floor(boxW / 7.5))));
    g.append(s("text", { class: "lane-sub", x, y: top + 32 }, truncate(sub, Math.floor(boxW / 6.5))));
    svg.append(g);
  }
  svg.append(s("text", { class: "lane-sub", x: MARGIN, y: top + 17, style: "text-anchor: start" }, startClock || "time"));
  svg.append(s("text", { class: "lane-sub", x: MARGIN, y: top + 32, style: "text-anchor: start" }, "+s, Δ previous"));

  const t0 = arrows.length ? arrows[0].time : 0;
  let y = top + HEAD_H + 8;
  for (const row of rows) {
    if (row.separator !== undefined) {
      svg.append(s("line", { class: "call-sep", x1: MARGIN, x2: width - MARGIN, y1: y + 6, y2: y + 6 }));
      svg.append(s("text", { class: "call-title", x: MARGIN, y: y + 20 }, truncate(`Call-ID ${row.separator ?? "(none)"}`, 80)));
      y += SEP_H;
      continue;
    }
    svg.append(drawArrow(row.arrow, y, geometry, t0, showTimes, onSelect, selectedId));
    y += ROW_H;
  }
  if (stickyHeader) container.append(headerCopy(svg, width, top + HEAD_H));
  container.append(svg);
  return svg;
}

/** The lane boxes again, in a strip that stays on top while the ladder scrolls down. */
function headerCopy(svg, width, height) {
  const head = s("svg", { class: "ladder", width, height, viewBox: `0 0 ${width} ${height}`, "aria-hidden": "true" });
  head.append(s("rect", { class: "bg", x: 0, y: 0, width, height }));
  for (const node of svg.querySelectorAll(":scope > .lane, :scope > .lane-sub")) {
    const copy = node.cloneNode(true);
    if (copy.classList.contains("lane")) {
      copy.setAttribute("class", "lane-copy");
      for (const line of copy.querySelectorAll(".lifeline")) line.remove();
    }
    head.append(copy);
  }
  const strip = document.createElement("div");
  strip.className = "ladder-head";
  strip.style.height = `${height}px`;
  strip.style.marginBottom = `-${height}px`;
  strip.append(head);
  return strip;
}

function splitLaneLabel(lane, responder, note) {
  if (responder) {
    const where = (lane.label || "").replace(/^sipresponder\s*/, "");
    return ["sipresponder", where || "responder"];
  }
  // "127.0.0.1:5061 (UDP)" -> title "127.0.0.1:5061", sub "UDP peer"
  const match = /^(.*)\s+\((\w+)\)$/.exec(lane.label || "");
  const who = note ? ` · ${note}` : "";
  if (match) return [match[1], `${match[2]} peer${who}`];
  return [lane.label || lane.id, `peer${who}`];
}

function drawArrow(arrow, y, geometry, t0, showTimes, onSelect, selectedId) {
  const { laneX, width, gap, labelChars, responderX } = geometry;
  const cls = CLASS_WORDS[arrow.class] ? arrow.class : "request";
  const x1 = laneX.get(arrow.from);
  const x2 = laneX.get(arrow.to);
  const isRequest = arrow.response_index === null || arrow.response_index === undefined;
  const outcome = isRequest && OUTCOME_WORDS[arrow.outcome] ? arrow.outcome : null;
  const word = arrowWord(arrow, cls);
  // A request the responder sent (and what the client answered) runs the other way.
  const sent = arrow.sent ? (isRequest ? "sent by the responder" : "the client's answer") : "";
  const spoken = [arrow.label, word.replace(/[()]/g, ""), outcome ? OUTCOME_WORDS[outcome] : "", sent,
    `${formatSeconds(arrow.time - t0)} after the first message`].filter(Boolean).join(", ");
  const g = s("g", {
    class: `arrow ${cls}${arrow.id === selectedId ? " selected" : ""}`,
    tabindex: 0, role: "button", "data-id": arrow.id, "data-seq": arrow.seq,
    "data-class": cls, "data-outcome": arrow.outcome || "", "data-from": arrow.from, "data-to": arrow.to,
    "data-retransmission": arrow.retransmission ? "true" : "false",
    "data-sent": arrow.sent ? "true" : "false",
    "data-label": arrow.label, "data-call-id": arrow.call_id || "",
    "aria-label": spoken,
  });
  g.append(s("rect", { class: "row-hit", x: 4, y: y, width: width - 8, height: ROW_H - 2, rx: 4 }));
  const lineY = y + ROW_H - 12;
  if (showTimes) {
    g.append(s("text", { class: "time", x: MARGIN, y: lineY - 10 }, `+${(arrow.time - t0).toFixed(3)} s`));
    g.append(s("text", { class: "delta", x: MARGIN, y: lineY + 3 }, arrow.delta ? `Δ ${formatSeconds(arrow.delta)}` : ""));
  }
  if (x1 === undefined || x2 === undefined) return g;
  const dir = x2 >= x1 ? 1 : -1;
  const self = x1 === x2;
  const line = self
    ? s("path", { class: "line", d: `M${x1},${lineY - 8} h40 v12 h-38`, "marker-end": `url(#head-${cls})` })
    : s("line", { class: "line", x1, y1: lineY, x2: x2 - dir * 1, y2: lineY, "marker-end": `url(#head-${cls})` });
  g.append(line);
  // A label sits over the middle of its arrow, and may run past the lanes (nothing else is
  // on its row), not past the picture. Over an arrow longer than the lanes' gap it sits
  // at the responder's end instead, so it stays in view when the far end is scrolled away.
  let lx = self ? x1 + 50 : (x1 + x2) / 2;
  let anchor = self ? "start" : "middle";
  let room;
  if (!self && Math.abs(x2 - x1) > gap * 1.5 && responderX !== undefined) {
    const right = Math.max(x1, x2) > responderX; // the peer is right of the responder
    lx = responderX + (right ? 28 : -28);
    anchor = right ? "start" : "end";
    room = Math.floor((Math.abs(x2 - x1) - 60) / CHAR_W);
  } else {
    const half = Math.min(lx - TIME_COL, width - lx - 4);
    room = Math.max(labelChars, Math.floor((self ? width - lx : 2 * half) / CHAR_W));
  }
  room -= word ? word.length : 0; // the word after the label counts too
  const label = s("text", { class: "label", x: lx, y: lineY - 6, "text-anchor": anchor },
    truncate(arrow.label, Math.max(12, room)));
  label.append(s("title", {}, arrow.label));
  if (word) label.append(s("tspan", { class: "word", dx: 6 }, word));
  g.append(label);
  // The icon sits near the arrow's start so it never hides the head.
  const ico = icon(cls === "request" ? null : cls, x1 + dir * 16, lineY);
  if (ico && !self) g.append(ico);
  if (outcome) {
    const bad = outcome === "fault" || outcome === "rejected" || outcome === "dropped";
    const bx = x2 + dir * 14 + (dir > 0 ? 0 : -BADGE_W);
    const badge = s("g", { class: `badge ${bad ? "bad" : "warn"}`, "data-outcome": outcome });
    badge.append(s("rect", { x: bx, y: lineY - 9, width: BADGE_W, height: 18, rx: 9 }));
    const oi = icon(outcome, bx + 10, lineY);
    if (oi) badge.append(oi);
    badge.append(s("text", { x: bx + 11 + BADGE_W / 2, y: lineY + 3.5 }, OUTCOME_WORDS[outcome].toUpperCase()));
    g.append(badge);
  }
  const select = () => onSelect && onSelect(arrow);
  g.addEventListener("click", select);
  g.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      select();
    } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const all = [...g.ownerSVGElement.querySelectorAll(".arrow")];
      const next = all[all.indexOf(g) + (event.key === "ArrowDown" ? 1 : -1)];
      if (next) next.focus();
    }
  });
  return g;
}

function arrowWord(arrow, cls) {
  if (cls === "request") return "";
  // A response of a fault entry is what the fault did to it (malformed, sent then closed).
  if (arrow.outcome === "fault") return `(${CLASS_WORDS[cls]}, fault)`;
  return `(${CLASS_WORDS[cls]})`;
}

/** The ladder as a standalone SVG document: its stylesheet is inside, colours resolved
 * to the light theme's fallbacks, no page state (selection, hover) left in. */
export function standaloneSvg(svg) {
  const copy = svg.cloneNode(true);
  for (const node of copy.querySelectorAll(".selected")) node.classList.remove("selected");
  for (const node of copy.querySelectorAll("[tabindex]")) node.removeAttribute("tabindex");
  const serialized = new XMLSerializer().serializeToString(copy);
  return `<?xml version="1.0" encoding="UTF-8"?>\n${serialized}\n`;
}

/** The legend: each class with a sample of its line, head and icon (wraps to the width). */
export function drawLegend(container) {
  clear(container);
  const items = [
    ["request", "request"], ["provisional", "1xx provisional"], ["success", "2xx success"],
    ["redirect", "3xx redirect"], ["client-error", "4xx-6xx error"], ["absorbed", "ACK absorbed"],
    ["retransmission", "retransmission"], ["rejected", "rejected (malformed)"],
  ];
  // One hidden SVG holds the markers the samples point at.
  const defs = s("svg", { width: 0, height: 0, class: "ladder", "aria-hidden": "true", style: "position: absolute" });
  defs.append(s("style", {}, LADDER_CSS), markerDefs());
  container.append(defs);
  const list = h("ul", { class: "legend-items" });
  for (const [cls, text] of items) {
    const sample = s("svg", { width: 44, height: 12, class: "ladder", "aria-hidden": "true" },
      s("g", { class: `arrow ${cls}` }, s("line", { class: "line", x1: 2, y1: 6, x2: 40, y2: 6, "marker-end": `url(#head-${cls})` })));
    list.append(h("li", { class: `legend-${cls}` }, sample, text));
  }
  list.append(h("li", { class: "legend-badge" }, "badges: no answer, cancelled, dropped, fault, rejected"));
  container.append(list);
}
