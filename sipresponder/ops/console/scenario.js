// The scenario tab: the running scenario's TOML in a textarea with a line-number gutter,
// checked as you type (POST /api/scenario/check, debounced; applies nothing), Apply
// (PUT /api/scenario, the atomic swap), a diff against what runs, the rules with their
// hit counts, and the states and counters of stateful rules with Reset.

import * as api from "./api.js";
import { h, clear, $, debounce } from "./dom.js";
import { lineDiff, hunks } from "./diff.js";

const CHECK_DELAY = 300; // ms after the last keystroke

export class ScenarioTab {
  constructor(root, { onRulesChanged, notify }) {
    this.root = root;
    this.onRulesChanged = onRulesChanged;
    this.notify = notify;
    this.running = ""; // the TOML the responder runs
    this.editor = $("#scenario-text", root);
    this.gutter = $("#scenario-gutter", root);
    this.mark = $("#scenario-mark", root);
    this.status = $("#scenario-status", root);
    this.applyButton = $("#scenario-apply", root);
    this.lastCheck = 0;
    this.valid = true;
    this.editor.addEventListener("input", () => {
      this.renderGutter();
      this.setStatus("checking", "Checking…");
      this.scheduleCheck();
      this.renderDiff();
    });
    this.editor.addEventListener("scroll", () => this.syncScroll());
    this.editor.addEventListener("keydown", (event) => {
      // Tab indents (two spaces) instead of leaving the editor; Escape then Tab leaves it.
      if (event.key === "Tab" && !event.shiftKey && !this.escaped) {
        event.preventDefault();
        this.editor.setRangeText("  ", this.editor.selectionStart, this.editor.selectionEnd, "end");
        this.editor.dispatchEvent(new Event("input"));
      } else if ((event.ctrlKey || event.metaKey) && event.key === "Enter") {
        event.preventDefault();
        this.apply();
      }
      this.escaped = event.key === "Escape";
    });
    this.scheduleCheck = debounce(() => this.check(), CHECK_DELAY);
    this.applyButton.addEventListener("click", () => this.apply());
    $("#scenario-revert", root).addEventListener("click", () => this.load());
    $("#state-reset", root).addEventListener("click", () => this.resetStates());
    $("#state-refresh", root).addEventListener("click", () => this.loadStates());
  }

  async load() {
    const text = await api.text("api/scenario");
    this.running = text;
    this.editor.value = text;
    this.renderGutter();
    this.setError(null);
    this.setStatus("ok", "The running scenario.");
    this.renderDiff();
    await Promise.all([this.loadRules(), this.loadStates()]);
  }

  renderGutter() {
    const count = this.editor.value.split("\n").length;
    if (this.gutter.childElementCount !== count) {
      clear(this.gutter);
      for (let i = 1; i <= count; i++) this.gutter.append(h("div", { "data-line": i }, String(i)));
    }
    this.markLine(this.errorLine);
  }

  syncScroll() {
    this.gutter.scrollTop = this.editor.scrollTop;
    this.markLine(this.errorLine);
  }

  lineHeight() {
    return parseFloat(getComputedStyle(this.editor).lineHeight) || 20;
  }

  markLine(line) {
    for (const old of this.gutter.querySelectorAll(".error")) old.classList.remove("error");
    for (const other of this.errorLines || []) {
      const cell = this.gutter.querySelector(`[data-line="${other}"]`);
      if (cell) cell.classList.add("error");
    }
    if (!line) {
      this.mark.hidden = true;
      return;
    }
    const cell = this.gutter.querySelector(`[data-line="${line}"]`);
    if (cell) cell.classList.add("error");
    const padTop = parseFloat(getComputedStyle(this.editor).paddingTop) || 0;
    this.mark.style.top = `${padTop + (line - 1) * this.lineHeight() - this.editor.scrollTop}px`;
    this.mark.style.height = `${this.lineHeight()}px`;
    this.mark.hidden = false;
  }

  setStatus(kind, text) {
    this.status.dataset.state = kind;
    this.status.textContent = text;
  }

  setError(error) {
    this.errorLine = error && error.line ? error.line : null;
    // Every error's line is marked in the gutter; the band marks the first.
    this.errorLines = error ? (error.errors || [error]).map((e) => e.line).filter(Boolean) : [];
    this.markLine(this.errorLine);
    this.editor.setAttribute("aria-invalid", error ? "true" : "false");
  }

  /** Validate the editor's text; `prefix` leads the error line (after a refused Apply). */
  async check(prefix = "") {
    const ticket = ++this.lastCheck;
    const text = this.editor.value;
    let result;
    try {
      const response = await api.request("api/scenario/check", { method: "POST", body: text, headers: { "Content-Type": "application/toml" } });
      result = await response.json();
    } catch (err) {
      if (ticket === this.lastCheck) this.setStatus("error", `Could not check: ${err.message}`);
      return;
    }
    if (ticket !== this.lastCheck) return; // a newer keystroke's check is on its way
    if (result.ok) {
      this.valid = true;
      this.setError(null);
      // count: the rules without [default], as Apply's answer counts them.
      const n = result.count ?? Math.max(0, (result.rules || []).length - 1);
      const valid = text === this.running ? "Valid: the running scenario." : `Valid (${plural(n, "rule")}); not applied yet.`;
      this.setStatus(...withWarnings(valid, result.warnings));
    } else {
      this.valid = false;
      this.setError(result);
      const [, ...more] = result.errors || [];
      const also = more.length
        ? ` (${plural(more.length, "more error")}: ${more.map((e) => `${at(e)}${withoutSource(e.error)}`).join("; ")})`
        : "";
      this.setStatus("error", `${prefix}${at(result)}${withoutSource(result.error)}${also}`);
    }
  }

  async apply() {
    const text = this.editor.value;
    this.applyButton.disabled = true;
    try {
      const response = await api.request("api/scenario", { method: "PUT", body: text, headers: { "Content-Type": "application/toml" } });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) {
        this.valid = false;
        this.setStatus("error", `Not applied, the running scenario stays: ${withoutSource(body.error || String(response.status))}`);
        await this.check("Not applied, the running scenario stays: "); // marks the line too
        return;
      }
      this.running = text;
      this.setError(null);
      const rules = typeof body.rules === "number" ? plural(body.rules, "rule") : "? rules";
      this.setStatus(...withWarnings(`Applied: ${rules} running.`, body.warnings));
      this.notify(`Scenario applied (${rules})`);
      this.renderDiff();
      await Promise.all([this.loadRules(), this.loadStates()]);
    } finally {
      this.applyButton.disabled = false;
    }
  }

  /** A `scenario` event: someone else swapped the scenario (SIGHUP, --watch, the API). */
  async scenarioSwapped() {
    const text = await api.text("api/scenario");
    const edited = this.editor.value !== this.running;
    this.running = text;
    if (!edited) {
      this.editor.value = text;
      this.renderGutter();
      this.setError(null);
    }
    this.renderDiff();
    await this.loadRules();
  }

  renderDiff() {
    const box = $("#scenario-diff", this.root);
    clear(box);
    const text = this.editor.value;
    if (text === this.running) {
      box.append(h("p", { class: "muted" }, "No changes: the editor holds the running scenario."));
      return;
    }
    const diff = hunks(lineDiff(this.running, text));
    const added = diff.filter((d) => d.op === "+").length;
    const removed = diff.filter((d) => d.op === "-").length;
    box.append(h("p", { class: "muted" }, `${added} line${added === 1 ? "" : "s"} added, ${removed} removed, against what runs:`));
    box.append(h("pre", { class: "diff" }, diff.map((d) => h("div", { class: `d${{ "+": "add", "-": "del", " ": "same", "…": "skip" }[d.op]}` },
      h("span", { class: "dop" }, d.op === "…" ? "⋯" : d.op), d.text))));
  }

  async loadRules() {
    let rules = [];
    try {
      rules = await api.json("api/rules");
    } catch (err) {
      this.notify(err.message, true);
    }
    this.rules = rules;
    const body = $("#rules-body", this.root);
    clear(body);
    for (const rule of rules) {
      const name = rule.name || (rule.number === 0 ? "[default]" : `#${rule.number}`);
      body.append(h("tr", { "data-rule": rule.name || "" },
        h("td", { class: "num" }, String(rule.number)),
        h("td", {}, rule.line
          ? h("button", { type: "button", class: "link-button", title: `Go to line ${rule.line}`, onclick: () => this.showLine(rule.line) }, name)
          : name),
        h("td", { class: "num hits" }, String(rule.hits)),
        h("td", {}, rule.stateful ? "stateful" : "")));
    }
    if (!rules.length) body.append(h("tr", {}, h("td", { colspan: 4, class: "muted" }, "no rules")));
    this.onRulesChanged(rules);
  }

  async loadStates() {
    const box = $("#state-box", this.root);
    let states;
    try {
      states = await api.json("api/state");
    } catch (err) {
      clear(box).append(h("p", { class: "error-text" }, err.message));
      return;
    }
    clear(box);
    const named = (states && states.states) || [];
    const counters = (states && states.counters) || [];
    if (!named.length && !counters.length) {
      box.append(h("p", { class: "muted" }, "No stateful rule holds state: every key is in start, every sequence at its first step."));
      return;
    }
    if (named.length) {
      box.append(table(["Scope", "Key", "State"], named.map((x) => [x.scope, x.key, x.state]), "states"));
    }
    if (counters.length) {
      box.append(table(["Rule", "Scope", "Key", "Count"], counters.map((x) => [x.rule, x.scope, x.key, x.count]), "counters"));
    }
  }

  async resetStates() {
    try {
      await api.json("api/state", { method: "DELETE" });
      this.notify("States and counters reset");
    } catch (err) {
      this.notify(err.message, true);
    }
    await this.loadStates();
  }

  /** Put the caret on `line`, scrolled into view (from a rule link or a message's rule). */
  showLine(line) {
    const lines = this.editor.value.split("\n");
    let offset = 0;
    for (let i = 0; i < line - 1 && i < lines.length; i++) offset += lines[i].length + 1;
    const end = offset + (lines[line - 1] || "").length;
    this.editor.focus();
    this.editor.setSelectionRange(offset, end);
    this.editor.scrollTop = Math.max(0, (line - 3) * this.lineHeight());
    this.syncScroll();
    for (const old of this.gutter.querySelectorAll(".target")) old.classList.remove("target");
    const cell = this.gutter.querySelector(`[data-line="${line}"]`);
    if (cell) cell.classList.add("target");
  }
}

/** "1 rule", "2 rules": the plural only for more than one (and none). */
function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** "line 4, column 1: " for an error placed in the text, else nothing. */
function at(error) {
  return error.line ? `line ${error.line}${error.column ? `, column ${error.column}` : ""}: ` : "";
}

/** A valid scenario's status: "warn" with the rules that can never match, if any. */
function withWarnings(text, warnings) {
  if (!warnings || !warnings.length) return ["ok", text];
  return ["warn", `${text} ${plural(warnings.length, "warning")}: ${warnings.join("; ")}`];
}

/** The loader names its source first ("<PUT /api/scenario>: ..."): here it is the editor. */
function withoutSource(error) {
  return error.replace(/^<[^>]*>:\s*/, "");
}

function table(columns, rows, name) {
  return h("table", { class: "states", "data-table": name },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows.map((row) => h("tr", {}, row.map((cell) => h("td", {}, cell === null || cell === undefined ? "" : String(cell)))))));
}
