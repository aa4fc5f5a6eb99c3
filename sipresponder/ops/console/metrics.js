// The metrics tab: requests/s by method, responses/s by code (rates from successive reads
// of /api/metrics.json: the counters are totals) and the processing-time histogram, as
// small SVG charts. Series differ by dash pattern and are named in the legend, not only
// by colour. Above them, where the requests went: the compiled path or the Python engine,
// and why the engine took its share (the same line /healthz gives).

import * as api from "./api.js";
import { s, h, clear, $ } from "./dom.js";

const HISTORY = 60; // samples kept
const PERIOD = 3000; // ms between reads while the tab is visible
const W = 560;
const H = 170;
const PAD = { left: 46, right: 12, top: 22, bottom: 26 };
const DASHES = ["", "6 3", "2 3", "10 3 2 3", "1 2", "12 4"];
const COLORS = ["var(--s1)", "var(--s2)", "var(--s3)", "var(--s4)", "var(--s5)", "var(--s6)"];

export class MetricsTab {
  constructor(root) {
    this.root = root;
    this.samples = [];
    this.timer = null;
    this.visible = false;
  }

  show(visible) {
    this.visible = visible;
    clearInterval(this.timer);
    this.timer = null;
    if (visible) {
      this.read();
      this.timer = setInterval(() => {
        if (document.visibilityState === "visible") this.read();
      }, PERIOD);
    }
  }

  /** Some traffic arrived (an event); read soon when the tab is open. */
  poke() {
    if (!this.visible || this.poked) return;
    this.poked = true;
    setTimeout(() => {
      this.poked = false;
      this.read();
    }, 1000);
  }

  async read() {
    let data;
    try {
      data = await api.json("api/metrics.json");
    } catch (err) {
      clear($("#metrics-status", this.root)).append(h("span", { class: "error-text" }, err.message));
      return;
    }
    this.samples.push({ t: performance.now() / 1000, data });
    if (this.samples.length > HISTORY + 1) this.samples.shift();
    $("#metrics-status", this.root).textContent =
      `Uptime ${Math.round(data.uptime || 0)} s · ${sum(data.requests)} requests · ${sum(data.responses)} responses in all`;
    this.pathLine().textContent = `Request path: ${pathSummary(data.paths)}`;
    this.render();
  }

  /** The line under the status that says where the requests went (made once). */
  pathLine() {
    let line = $("#metrics-paths", this.root);
    if (!line) {
      line = h("p", { id: "metrics-paths", class: "muted" });
      $("#metrics-status", this.root).after(line);
    }
    return line;
  }

  rates(key) {
    const names = new Set();
    for (const sample of this.samples) for (const name of Object.keys(sample.data[key] || {})) names.add(name);
    const series = [...names].sort().map((name) => ({ name, points: [] }));
    for (let i = 1; i < this.samples.length; i++) {
      const [a, b] = [this.samples[i - 1], this.samples[i]];
      const dt = Math.max(b.t - a.t, 0.001);
      for (const line of series) {
        const delta = ((b.data[key] || {})[line.name] || 0) - ((a.data[key] || {})[line.name] || 0);
        line.points.push([b.t, Math.max(0, delta) / dt]);
      }
    }
    return series;
  }

  render() {
    const last = this.samples[this.samples.length - 1].data;
    lineChart($("#chart-requests", this.root), this.rates("requests"), "requests/s");
    lineChart($("#chart-responses", this.root), this.rates("responses"), "responses/s");
    histogram($("#chart-latency", this.root), last.latency || { buckets: [] });
  }
}

/**
 * "compiled 91 %, engine 9 %: sdp-answer 6 %, digest 3 %" from /api/metrics.json's
 * paths (ops/metrics.py path_summary writes the same for /healthz).
 */
export function pathSummary(paths) {
  if (!paths) return "not reported";
  const compiled = paths.compiled || 0;
  const engine = paths.engine || 0;
  const total = compiled + engine;
  if (!total) return "no requests yet";
  const share = (n) => {
    const percent = (100 * n) / total;
    // 0 % and 100 % only when exact: a rare reason must not read as none.
    if ((percent >= 1 && percent <= 99) || percent === 0 || percent === 100) return `${Math.round(percent)} %`;
    return `${Math.min(Math.max(percent, 0.1), 99.9).toFixed(1)} %`;
  };
  const reasons = Object.entries(paths.reasons || {}).filter(([, n]) => n > 0);
  const text = `compiled ${share(compiled)}, engine ${share(engine)}`;
  return reasons.length ? `${text}: ${reasons.map(([reason, n]) => `${reason} ${share(n)}`).join(", ")}` : text;
}

function sum(counts) {
  return Object.values(counts || {}).reduce((a, b) => a + b, 0);
}

function frame(title) {
  const svg = s("svg", { xmlns: "http://www.w3.org/2000/svg", class: "chart", width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
  return svg;
}

/** A round upper bound for the y axis, and a number of grid steps that keeps ticks round. */
function niceMax(value) {
  if (value <= 0) return [1, 4];
  const power = 10 ** Math.floor(Math.log10(value));
  for (const [step, divisions] of [[1, 5], [2, 4], [5, 5], [10, 5]]) {
    if (step * power >= value) return [step * power, divisions];
  }
  return [10 * power, 5];
}

function axes(svg, [maxY, divisions], unit) {
  const x0 = PAD.left;
  const y0 = H - PAD.bottom;
  for (let k = 0; k <= divisions; k++) {
    const y = y0 - ((H - PAD.top - PAD.bottom) * k) / divisions;
    svg.append(s("line", { class: "grid", x1: x0, x2: W - PAD.right, y1: y, y2: y }));
    const v = (maxY * k) / divisions;
    svg.append(s("text", { class: "tick", x: x0 - 6, y: y + 4, "text-anchor": "end" }, String(+v.toPrecision(3))));
  }
  svg.append(s("text", { class: "tick unit", x: x0 - 40, y: 12 }, unit));
}

export function lineChart(box, series, unit) {
  clear(box);
  const svg = frame(`${unit} over the last reads`);
  const points = series.flatMap((line) => line.points);
  const scale = niceMax(Math.max(0, ...points.map((p) => p[1])));
  const maxY = scale[0];
  axes(svg, scale, unit);
  if (!points.length) {
    svg.append(s("text", { class: "tick", x: W / 2, y: H / 2, "text-anchor": "middle" }, "collecting… (rates need two reads)"));
  }
  const ts = points.map((p) => p[0]);
  const [tMin, tMax] = [Math.min(...ts), Math.max(...ts)];
  const xOf = (t) => PAD.left + ((t - tMin) / Math.max(tMax - tMin, 1)) * (W - PAD.left - PAD.right);
  const yOf = (v) => H - PAD.bottom - (v / maxY) * (H - PAD.top - PAD.bottom);
  series.forEach((line, i) => {
    if (!line.points.length) return;
    const d = line.points.map(([t, v], k) => `${k ? "L" : "M"}${xOf(t).toFixed(1)},${yOf(v).toFixed(1)}`).join(" ");
    svg.append(s("path", { class: "series", d, style: `stroke: ${COLORS[i % COLORS.length]}; stroke-dasharray: ${DASHES[i % DASHES.length] || "none"}`, "data-series": line.name }));
  });
  box.append(svg);
  box.append(h("ul", { class: "legend-list" }, series.map((line, i) => {
    const now = line.points.length ? line.points[line.points.length - 1][1] : 0;
    return h("li", {},
      s("svg", { width: 28, height: 10, "aria-hidden": "true" },
        s("line", { x1: 0, x2: 28, y1: 5, y2: 5, style: `stroke: ${COLORS[i % COLORS.length]}; stroke-width: 2.5; stroke-dasharray: ${DASHES[i % DASHES.length] || "none"}` })),
      ` ${line.name}: ${now.toFixed(1)}/s`);
  })));
}

export function histogram(box, latency) {
  clear(box);
  const svg = frame("processing-time histogram");
  const buckets = latency.buckets || [];
  const counts = [];
  let previous = 0;
  for (const [le, cumulative] of buckets) {
    counts.push([le, Math.max(0, cumulative - previous)]);
    previous = cumulative;
  }
  const scale = niceMax(Math.max(0, ...counts.map((c) => c[1])));
  const maxY = scale[0];
  axes(svg, scale, "requests per bucket");
  const slot = (W - PAD.left - PAD.right) / Math.max(counts.length, 1);
  counts.forEach(([le, n], i) => {
    const x = PAD.left + i * slot;
    const hgt = (n / maxY) * (H - PAD.top - PAD.bottom);
    svg.append(s("rect", { class: "bar", x: x + 2, y: H - PAD.bottom - hgt, width: Math.max(slot - 4, 1), height: hgt }, s("title", {}, `≤ ${leText(le)}: ${n}`)));
    // Every label where they fit, else every other one.
    if (slot >= 44 || i % 2 === 0) {
      svg.append(s("text", { class: "tick", x: x + slot / 2, y: H - PAD.bottom + 13, "text-anchor": "middle" }, leText(le)));
    }
  });
  box.append(svg);
  const mean = latency.count ? (latency.sum / latency.count) * 1000 : 0;
  box.append(h("p", { class: "muted" }, `${latency.count || 0} requests handled, mean ${mean.toFixed(2)} ms (bars: requests per bucket, upper bound below)`));
}

function leText(le) {
  if (le === "+Inf" || le === Infinity || le === null) return "more";
  const v = Number(le);
  if (!Number.isFinite(v)) return "more";
  if (v < 0.001) return `${+(v * 1e6).toPrecision(3)}µs`;
  return v < 1 ? `${+(v * 1000).toPrecision(3)}ms` : `${v}s`;
}
