// The live journal: entries from the event stream, grouped by Call-ID into calls, the
// filters (method, Request-URI, rule, Call-ID, source, status class, direction, free text), pause and
// clear. The filters run here, on what the stream delivered; the ladder and the exports
// ask the server for exactly the entries left visible (by sequence number).

import { h, clear } from "./dom.js";

export const MAX_LIST = 500; // calls listed at most (the newest); the journal itself may hold more
// Entries the page keeps: the server's ring pushes old ones out without an event, so the
// page drops its oldest too, and a console left open for days stays small.
export const MAX_ENTRIES = 5000;
// Marks a request the responder sent in a call's summary: it goes back towards the client.
export const SENT_ARROW = "←";

function glob(pattern) {
  const escaped = pattern.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*");
  return new RegExp(`^${escaped}$`, "i");
}

/** A case-insensitive test: a glob when the pattern has a '*', a substring otherwise. */
function textMatcher(pattern) {
  if (!pattern) return null;
  if (pattern.includes("*")) {
    const re = glob(pattern);
    return (value) => re.test(value || "");
  }
  const needle = pattern.toLowerCase();
  return (value) => (value || "").toLowerCase().includes(needle);
}

export function statusClassOf(code) {
  return `${String(code)[0]}xx`;
}

export function callKey(entry) {
  return entry.call_id ? `c:${entry.call_id}` : `s:${entry.seq}`;
}

/** "received" or "sent" (a request the responder sent itself); an older server's
 * entries have no direction and were all received. */
export function directionOf(entry) {
  return entry.direction === "sent" ? "sent" : "received";
}

export function sourceOf(entry) {
  const [host, port] = entry.remote || ["", ""];
  const shown = String(host).includes(":") ? `[${host}]` : host;
  return `${entry.transport || ""} ${shown}:${port}`;
}

/** The predicate of the filter form's values. */
export function buildFilter(values) {
  const method = (values.method || "").trim().toUpperCase();
  const uri = textMatcher((values.uri || "").trim());
  const callId = textMatcher((values.call_id || "").trim());
  const source = textMatcher((values.source || "").trim());
  const rule = values.rule || "";
  const status = values.status || "";
  const direction = values.direction || "";
  const free = (values.text || "").trim().toLowerCase();
  return (entry) => {
    if (method && (entry.method || "").toUpperCase() !== method) return false;
    if (uri && !uri(entry.uri)) return false;
    if (callId && !callId(entry.call_id)) return false;
    if (direction && directionOf(entry) !== direction) return false;
    if (source && !source(sourceOf(entry))) return false;
    if (rule === "(none)") {
      if (entry.rule) return false;
    } else if (rule && entry.rule !== rule && !ruleNameMatches(entry.rule, rule)) return false;
    if (status) {
      const codes = entry.codes || [];
      if (status === "none" ? codes.length : !codes.some((c) => statusClassOf(c) === status)) return false;
    }
    if (free) {
      const hay = [entry.raw, ...(entry.responses || []), entry.rule || "", entry.kind || ""].join("\n").toLowerCase();
      if (!hay.includes(free)) return false;
    }
    return true;
  };
}

function ruleNameMatches(label, name) {
  // The journal names a rule by its label ("rule 'busy' (#1)"); the filter may hold the name.
  return Boolean(label) && label.includes(`'${name}'`);
}

/** The one-line summary of a call: "INVITE 180 200 · ACK · BYE 200"; a request the
 * responder sent has an arrow to say so: "INVITE 200 · ACK · ← BYE 200". */
export function summarize(entries) {
  const parts = [];
  for (const e of entries) {
    // codes leaves retransmitted responses out; they are counted after them instead.
    const codes = (e.codes || []).join(" ");
    const method = e.method || "(malformed)";
    const mark = { "not-answered": " (no answer)", cancelled: " (cancelled)", fault: " (fault)", rejected: " (rejected)", dropped: " (dropped)", retransmission: " (retransmitted)" }[e.kind] || "";
    const again = e.kind === "retransmission" ? 0 : (e.retransmitted || []).filter(Boolean).length;
    const repeats = again ? ` (+${again} retransmitted)` : "";
    const sent = directionOf(e) === "sent" ? `${SENT_ARROW} ` : "";
    const text = `${sent}${method}${codes ? ` ${codes}` : ""}${repeats}${mark}`;
    // Repeats (a client's retransmissions) count up instead of filling the row.
    const last = parts[parts.length - 1];
    if (last && last.text === text) last.times += 1;
    else parts.push({ text, times: 1 });
  }
  return parts.map((p) => (p.times > 1 ? `${p.text} ×${p.times}` : p.text)).join(" · ");
}

function clockOf(entry) {
  const text = entry.received_at || "";
  const match = /T?(\d\d:\d\d:\d\d(?:\.\d{1,3})?)/.exec(text);
  return match ? match[1] : text;
}

export class Journal {
  constructor() {
    this.entries = new Map(); // seq -> entry
    this.paused = false;
    this.pending = []; // events held while paused
    this.listeners = [];
  }

  onChange(fn) {
    this.listeners.push(fn);
  }

  emit(what) {
    for (const fn of this.listeners) fn(what);
  }

  /** One event of the stream: "entry", "update" or "cleared". */
  receive(kind, data) {
    if (this.paused && kind !== "cleared") {
      this.pending.push([kind, data]);
      this.emit({ pending: this.pending.length });
      return;
    }
    this.apply(kind, data);
    this.emit({ kind, seq: data && data.seq });
  }

  apply(kind, data) {
    if (kind === "cleared") {
      this.entries.clear();
      this.pending = [];
    } else {
      this.entries.set(data.seq, data);
      if (this.entries.size > MAX_ENTRIES) {
        // Map order is arrival order, and seq grows with it: the first keys are the oldest.
        const oldest = this.entries.keys();
        while (this.entries.size > MAX_ENTRIES) this.entries.delete(oldest.next().value);
      }
    }
  }

  setPaused(paused) {
    this.paused = paused;
    if (!paused) {
      for (const [kind, data] of this.pending) this.apply(kind, data);
      this.pending = [];
      this.emit({ kind: "resumed" });
    }
  }

  /** Entries passing `filter`, oldest first, grouped into calls (first arrival order). */
  calls(filter) {
    const groups = new Map();
    const sorted = [...this.entries.values()].sort((a, b) => a.seq - b.seq);
    for (const entry of sorted) {
      if (!filter(entry)) continue;
      const key = callKey(entry);
      if (!groups.has(key)) groups.set(key, { key, call_id: entry.call_id, entries: [] });
      groups.get(key).entries.push(entry);
    }
    return [...groups.values()];
  }
}

/** The list of calls as DOM rows; `selected` holds call keys. */
export function renderCalls(list, calls, selected, { onPick }) {
  clear(list);
  const shown = calls.slice(-MAX_LIST);
  if (calls.length > shown.length) {
    list.append(h("li", { class: "muted note" }, `${calls.length - shown.length} older calls not listed`));
  }
  if (!shown.length) {
    list.append(h("li", { class: "muted note empty" }, "No requests yet (or none match the filters)."));
    return;
  }
  for (const call of shown) {
    const first = call.entries[0];
    const isSelected = selected.has(call.key);
    const worst = worstKind(call.entries);
    const row = h("li", { class: `call${isSelected ? " selected" : ""}${worst ? ` ${worst}` : ""}`, "data-key": call.key, "data-call-id": call.call_id || "" },
      h("button", {
        type: "button", class: "call-button", "aria-pressed": isSelected ? "true" : "false",
        title: "Show this call in the ladder (Ctrl+click adds it to the selection)",
        onclick: (event) => onPick(call.key, event.ctrlKey || event.metaKey || event.shiftKey),
      },
      h("span", { class: "call-summary" }, summarize(call.entries)),
      h("span", { class: "call-meta" },
        h("span", { class: "call-time" }, clockOf(first)),
        h("span", { class: "call-source" }, sourceOf(first)),
        h("span", { class: "call-id" }, call.call_id ? `Call-ID ${call.call_id}` : `#${first.seq}, no Call-ID`))));
    list.append(row);
  }
}

function worstKind(entries) {
  for (const kind of ["fault", "rejected", "not-answered", "dropped"]) {
    if (entries.some((e) => e.kind === kind)) return `has-${kind}`;
  }
  return "";
}
