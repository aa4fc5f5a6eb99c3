// The detail panel of one message: its raw text (start line and header names marked), the
// parsed header table, the rule that matched, the near miss and the responses sent.
// Every piece of message text goes in through textContent: SIP messages are attacker input.

import { h, clear } from "./dom.js";

/** The raw message as DOM: the start line and each header name in their own spans. */
export function rawMessage(text) {
  const pre = h("pre", { class: "raw", tabindex: 0 });
  const lines = text.split(/\r\n|\n/);
  let inHeaders = true;
  lines.forEach((line, i) => {
    if (i === 0) {
      pre.append(h("span", { class: "start-line" }, line));
    } else if (inHeaders && line === "") {
      inHeaders = false;
    } else if (inHeaders) {
      const colon = line.indexOf(":");
      if (colon > 0 && !/^\s/.test(line)) {
        pre.append(h("span", { class: "hname" }, line.slice(0, colon)), line.slice(colon));
      } else {
        pre.append(line); // a folded continuation line, or no colon at all (malformed)
      }
    } else {
      pre.append(h("span", { class: "body" }, line));
    }
    if (i < lines.length - 1) pre.append("\n");
  });
  return pre;
}

/** [name, value] pairs of a message's header section (folded lines joined). */
export function parseHeaders(text) {
  const head = text.split(/\r\n\r\n|\n\n/, 1)[0];
  const lines = head.split(/\r\n|\n/).slice(1);
  const headers = [];
  for (const line of lines) {
    if (/^\s/.test(line) && headers.length) {
      headers[headers.length - 1][1] += ` ${line.trim()}`;
      continue;
    }
    const colon = line.indexOf(":");
    if (colon > 0) headers.push([line.slice(0, colon).trim(), line.slice(colon + 1).trim()]);
  }
  return headers;
}

function headerTable(headers) {
  if (!headers.length) return h("p", { class: "muted" }, "no header fields could be read");
  return h("table", { class: "headers" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Header"), h("th", { scope: "col" }, "Value"))),
    h("tbody", {}, headers.map(([name, value]) => h("tr", {}, h("th", { scope: "row" }, name), h("td", {}, value)))));
}

function section(title, ...content) {
  return h("section", { class: "detail-section" }, h("h3", {}, title), ...content);
}

function startLine(text) {
  return text.split(/\r\n|\n/, 1)[0];
}

async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Copy failed"; // a page not on loopback or HTTPS has no clipboard
  }
  setTimeout(() => { button.textContent = "Copy"; }, 1500);
}

/**
 * Fill `panel` with entry `entry` (GET /api/requests/{seq}), showing the message of the
 * selected arrow (`responseIndex` null: the request). `onShowRule(line)` jumps to the rule
 * in the scenario editor.
 */
export function showMessage(panel, entry, responseIndex, { onShowRule } = {}) {
  clear(panel);
  const isResponse = responseIndex !== null && responseIndex !== undefined;
  const raw = isResponse ? entry.responses[responseIndex] || "" : entry.raw;
  const title = isResponse
    ? `Response ${startLine(raw)}`
    : `${entry.method || "(unparsed)"} ${entry.uri || ""}`;
  const where = `${(entry.transport || "").toUpperCase()} ${(entry.remote || []).join(":")}`;
  // A request the responder sent went to `remote`, and its responses came from there.
  const sent = entry.direction === "sent";
  panel.append(h("header", { class: "detail-head" },
    h("h2", { id: "detail-title" }, title),
    h("p", { class: "muted" },
      `#${entry.seq} · ${isResponse !== sent ? "sent to" : "from"} ${where} · ${entry.received_at || ""}`,
      entry.kind ? ` · ${entry.kind}` : "")));

  const copy = h("button", { type: "button", class: "small copy", title: "Copy the message as text",
    onclick: () => copyText(raw, copy) }, "Copy");
  const heading = isResponse ? (sent ? "Response received" : "Response sent") : (sent ? "Request sent" : "Request received");
  panel.append(section(heading, copy,
    isResponse ? h("p", { class: "muted in-reply" }, "in reply to ", h("code", {}, startLine(entry.raw))) : null,
    rawMessage(raw)));

  const ruleBits = [];
  if (entry.rule) {
    ruleBits.push(h("p", {}, h("strong", { class: "rule-name" }, entry.rule),
      entry.rule_line ? ` (line ${entry.rule_line} of the running scenario)` : ""));
    if (entry.rule_toml) ruleBits.push(h("pre", { class: "rule-toml" }, entry.rule_toml));
    if (entry.rule_line && onShowRule) {
      ruleBits.push(h("button", { type: "button", class: "link-button", "data-action": "show-rule",
        onclick: () => onShowRule(entry.rule_line) }, "Show in the scenario editor"));
    }
  } else if (sent) {
    ruleBits.push(h("p", { class: "muted" }, `sent by the responder: ${entry.outcome || "(no note)"}`));
  } else {
    ruleBits.push(h("p", { class: "muted" }, entry.outcome ? `no rule: ${entry.outcome}` : "no rule matched"));
  }
  panel.append(section("Matched rule", ...ruleBits));

  if (entry.near_miss) {
    panel.append(section("Near miss",
      h("p", {}, "The closest rule that did not match: ", h("strong", {}, entry.near_miss.rule),
        ". The conditions that failed:"),
      h("ul", { class: "failed" }, entry.near_miss.failed.map((why) => h("li", {}, why)))));
  }

  const responses = entry.responses || [];
  const headerSection = section("Header fields", headerTable(isResponse ? parseHeaders(raw) : entry.headers || parseHeaders(raw)));
  panel.append(section(`Responses ${sent ? "received" : "sent"} (${responses.length})`,
    responses.length
      ? h("ol", { class: "responses" }, responses.map((text, i) => h("li", {},
        h("details", { open: isResponse && i === responseIndex ? true : null },
          h("summary", {}, startLine(text), (entry.response_times || [])[i] !== undefined
            ? h("span", { class: "muted" }, ` +${((entry.response_times[i] - entry.time) * 1000).toFixed(1)} ms`) : ""),
          rawMessage(text)))))
      : h("p", { class: "muted" }, entry.kind === "absorbed" ? "none: an ACK is never answered" : "none")));
  panel.append(headerSection);
}
