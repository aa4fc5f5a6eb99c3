// The console's entry point: tabs, the event stream, and the wiring between the journal
// list, the ladder, the message panel, the scenario editor and the metrics.

import * as api from "./api.js";
import { h, clear, $, debounce, download } from "./dom.js";
import { Journal, buildFilter, renderCalls, callKey } from "./journal.js";
import { drawLadder, drawLegend, standaloneSvg } from "./ladder.js";
import { showMessage } from "./message.js";
import { ScenarioTab } from "./scenario.js";
import { MetricsTab } from "./metrics.js";

const MAX_LADDER = 300; // messages' entries drawn at most (the newest), so a long run stays fast

const journal = new Journal();
const selected = new Set(); // call keys picked in the list; empty: every visible call
let filter = () => true;
let visible = []; // the calls passing the filters
let ladderSeqs = []; // the entries the ladder shows
let ladderSvg = null;
let selectedArrow = null;
let ladderTicket = 0;
let ladderModel = null;

// -- notices ------------------------------------------------------------------------------
function notify(text, isError = false) {
  const box = $("#toast");
  box.textContent = text;
  box.dataset.kind = isError ? "error" : "info";
  box.hidden = false;
  clearTimeout(notify.timer);
  notify.timer = setTimeout(() => { box.hidden = true; }, isError ? 8000 : 3000);
}

// -- tabs ---------------------------------------------------------------------------------
const tabs = [...document.querySelectorAll('[role="tab"]')];
let metrics = null;
let scenario = null;

function openTab(tab, focus = false) {
  for (const other of tabs) {
    const on = other === tab;
    other.setAttribute("aria-selected", on ? "true" : "false");
    other.tabIndex = on ? 0 : -1;
    $(`#${other.getAttribute("aria-controls")}`).hidden = !on;
  }
  if (focus) tab.focus();
  metrics.show(tab.id === "tab-button-metrics");
  if (tab.id === "tab-button-scenario") Promise.all([scenario.loadRules(), scenario.loadStates()]);
  history.replaceState(null, "", `${location.search}#${tab.id.replace("tab-button-", "")}`);
}

for (const tab of tabs) {
  tab.addEventListener("click", () => openTab(tab));
  tab.addEventListener("keydown", (event) => {
    const i = tabs.indexOf(tab);
    const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[event.key];
    if (next === undefined) return;
    event.preventDefault();
    openTab(tabs[(next + tabs.length) % tabs.length], true);
  });
}

// -- filters and the call list ------------------------------------------------------------
const filterForm = $("#filters");

function filterValues() {
  const values = {};
  for (const field of filterForm.elements) if (field.name) values[field.name] = field.value;
  return values;
}

function refreshList() {
  filter = buildFilter(filterValues());
  visible = journal.calls(filter);
  const keys = new Set(visible.map((c) => c.key));
  for (const key of [...selected]) if (!keys.has(key)) selected.delete(key);
  const list = $("#calls");
  // A redraw keeps the reader's place: the focused call, and the bottom (the newest) if
  // that is where they were.
  const focusedRow = document.activeElement && document.activeElement.closest && document.activeElement.closest("#calls li.call");
  const focusKey = focusedRow ? focusedRow.dataset.key : null;
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 30;
  const keep = list.scrollTop;
  renderCalls(list, visible, selected, { onPick: pickCall });
  list.scrollTop = atBottom ? list.scrollHeight : keep;
  if (focusKey) {
    const again = list.querySelector(`li.call[data-key="${CSS.escape(focusKey)}"] button`);
    if (again) again.focus({ preventScroll: true });
  }
  const entries = visible.reduce((n, c) => n + c.entries.length, 0);
  $("#list-count").textContent = `${visible.length} call${visible.length === 1 ? "" : "s"}, ${entries} request${entries === 1 ? "" : "s"}${journal.entries.size !== entries ? ` (of ${journal.entries.size})` : ""}`;
  $("#filters-active").hidden = !Object.values(filterValues()).some(Boolean);
  updateLadderSelection();
}

const refreshSoon = debounce(refreshList, 120);
filterForm.addEventListener("input", refreshSoon);
filterForm.addEventListener("change", refreshSoon); // a <select> picked by script fires only change
filterForm.addEventListener("submit", (event) => { event.preventDefault(); refreshList(); });
$("#filters-reset").addEventListener("click", () => {
  filterForm.reset();
  refreshList();
});

function pickCall(key, add) {
  if (add) {
    if (selected.has(key)) selected.delete(key);
    else selected.add(key);
  } else if (selected.size === 1 && selected.has(key)) {
    selected.clear();
  } else {
    selected.clear();
    selected.add(key);
  }
  refreshList();
}

// Up and Down move between calls (Enter or Space on one shows it).
$("#calls").addEventListener("keydown", (event) => {
  if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
  const buttons = [...document.querySelectorAll("#calls .call-button")];
  const i = buttons.indexOf(document.activeElement);
  const next = buttons[i + (event.key === "ArrowDown" ? 1 : -1)];
  if (i >= 0 && next) {
    event.preventDefault();
    next.focus();
  }
});

$("#show-all").addEventListener("click", () => {
  selected.clear();
  refreshList();
});

// -- the ladder ---------------------------------------------------------------------------
function currentSeqs() {
  const calls = selected.size ? visible.filter((c) => selected.has(c.key)) : visible;
  return calls.flatMap((c) => c.entries.map((e) => e.seq)).sort((a, b) => a - b).slice(-MAX_LADDER);
}

function updateLadderSelection(force = false) {
  const seqs = currentSeqs();
  const same = seqs.length === ladderSeqs.length && seqs.every((x, i) => x === ladderSeqs[i]);
  if (same && !force) return;
  ladderSeqs = seqs;
  const title = selected.size
    ? `${selected.size} selected call${selected.size === 1 ? "" : "s"}`
    : `${{ 0: "no calls", 1: "the 1 call" }[visible.length] ?? `all ${visible.length} calls`}${filterActive() ? " matching the filters" : ""}`;
  const all = (selected.size ? visible.filter((c) => selected.has(c.key)) : visible).reduce((n, c) => n + c.entries.length, 0);
  const capped = all > seqs.length ? ` (the newest ${seqs.length} of ${all} requests)` : "";
  $("#ladder-title").textContent = `Ladder: ${title}${capped}`;
  $("#show-all").hidden = !selected.size;
  updateExports();
  loadLadder();
}

function filterActive() {
  return Object.values(filterValues()).some(Boolean);
}

const loadLadder = debounce(async () => {
  const ticket = ++ladderTicket;
  const box = $("#ladder");
  if (!ladderSeqs.length) {
    ladderSvg = null;
    ladderModel = null;
    clear(box).append(h("p", { class: "muted empty-ladder" }, journal.entries.size
      ? "No message matches the filters."
      : "Waiting for traffic: send a request to the responder and it appears here."));
    return;
  }
  let model;
  try {
    model = await api.json(`api/ladder?seq=${ladderSeqs.join(",")}`);
  } catch (err) {
    if (ticket === ladderTicket) clear(box).append(h("p", { class: "error-text" }, err.message));
    return;
  }
  if (ticket !== ladderTicket) return; // a newer selection's ladder is on its way
  ladderModel = model;
  redrawLadder(true);
}, 80);

/** Draw the last ladder model again (a new model, or a new width: the panel opened). */
function redrawLadder(follow = false) {
  const box = $("#ladder");
  if (!ladderModel) return;
  const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest(".arrow");
  const focusId = focused ? focused.dataset.id : null;
  const stick = follow && box.scrollHeight - box.scrollTop - box.clientHeight < 40; // follow the newest
  const keep = box.scrollTop;
  const arrows = ladderModel.arrows || [];
  const first = arrows.length ? journal.entries.get(arrows[0].seq) : null;
  ladderSvg = drawLadder(box, ladderModel, {
    laneNotes: userAgents(arrows),
    onSelect: selectArrow, selectedId: selectedArrow && selectedArrow.id, fitWidth: box.clientWidth - 12, // less the badge room (console.css)
    startClock: first ? clockOf(first.received_at) : "",
    stickyHeader: true,
    title: `sipresponder ladder: ${$("#ladder-title").textContent.replace(/^Ladder: /, "")}, from ${first ? first.received_at : "?"}`,
  });
  box.dataset.arrows = String((ladderModel.arrows || []).length);
  box.scrollTop = stick ? box.scrollHeight : keep;
  if (focusId) {
    const again = box.querySelector(`.arrow[data-id="${CSS.escape(focusId)}"]`);
    if (again) again.focus({ preventScroll: true });
  }
}

window.addEventListener("resize", debounce(() => redrawLadder(), 150));

async function selectArrow(arrow) {
  selectedArrow = arrow;
  for (const node of document.querySelectorAll("#ladder .arrow.selected")) node.classList.remove("selected");
  const node = document.querySelector(`#ladder .arrow[data-id="${CSS.escape(arrow.id)}"]`);
  if (node) node.classList.add("selected");
  const panel = $("#detail-body");
  if ($("#detail").hidden) {
    $("#detail").hidden = false;
    redrawLadder(); // narrower now
  }
  clear(panel).append(h("p", { class: "muted" }, "Loading…"));
  try {
    const entry = await api.json(`api/requests/${arrow.seq}`);
    if (selectedArrow !== arrow) return;
    showMessage(panel, entry, arrow.response_index, { onShowRule: showRuleInEditor });
  } catch (err) {
    clear(panel).append(h("p", { class: "error-text" }, err.message));
  }
}

function showRuleInEditor(line) {
  openTab($("#tab-button-scenario"));
  scenario.showLine(line);
}

$("#detail-close").addEventListener("click", () => {
  $("#detail").hidden = true;
  const id = selectedArrow && selectedArrow.id;
  selectedArrow = null;
  redrawLadder();
  const back = id && document.querySelector(`#ladder .arrow[data-id="${CSS.escape(id)}"]`);
  if (back) back.focus(); // the keyboard user returns to the arrow they opened
});

/** Lane id -> the User-Agent its first request named: who the peer is, when it says so. */
function userAgents(arrows) {
  const notes = {};
  for (const arrow of arrows) {
    if (arrow.from === "responder" || notes[arrow.from] !== undefined) continue;
    const entry = journal.entries.get(arrow.seq);
    const ua = entry && (entry.headers || []).find(([name]) => name.toLowerCase() === "user-agent");
    notes[arrow.from] = ua ? ua[1] : "";
  }
  return notes;
}

/** "07:58:13.775" of an ISO time (UTC, as the journal writes it). */
function clockOf(iso) {
  const match = /T(\d\d:\d\d:\d\d(?:\.\d{1,3})?)/.exec(iso || "");
  return match ? `${match[1]}Z` : "";
}

// -- exports ------------------------------------------------------------------------------
function selectionQuery() {
  // Everything shown: no parameter (the whole journal); otherwise the entries by number.
  const all = !selected.size && !filterActive() && ladderSeqs.length === journal.entries.size;
  return all ? "" : `?seq=${ladderSeqs.join(",")}`;
}

function updateExports() {
  const pcap = $("#export-pcap");
  pcap.href = `api/requests.pcap${selectionQuery()}`;
  const disabled = !ladderSeqs.length;
  for (const id of ["#export-pcap", "#export-svg", "#export-json"]) {
    $(id).setAttribute("aria-disabled", disabled ? "true" : "false");
  }
}

$("#export-pcap").addEventListener("click", async (event) => {
  if (!ladderSeqs.length) {
    event.preventDefault();
    return;
  }
  if (!api.hasToken) return; // a plain link: the browser downloads it
  event.preventDefault(); // the Bearer header needs a fetch
  try {
    download("sipresponder.pcap", await api.fetchBlob(`api/requests.pcap${selectionQuery()}`));
  } catch (err) {
    notify(err.message, true);
  }
});

$("#export-svg").addEventListener("click", () => {
  if (!ladderSvg) return;
  download("sipresponder-ladder.svg", standaloneSvg(ladderSvg), "image/svg+xml");
});

$("#export-json").addEventListener("click", () => {
  if (!ladderSeqs.length) return;
  const entries = ladderSeqs.map((seq) => journal.entries.get(seq)).filter(Boolean);
  download("sipresponder-selection.json", `${JSON.stringify({ count: entries.length, entries }, null, 2)}\n`, "application/json");
});

// -- pause and clear ----------------------------------------------------------------------
const pauseButton = $("#pause");
pauseButton.addEventListener("click", () => {
  const pause = !journal.paused;
  journal.setPaused(pause);
  pauseButton.setAttribute("aria-pressed", pause ? "true" : "false");
  pauseButton.textContent = pause ? "Resume" : "Pause";
  $("#pending").hidden = !pause;
  $("#pending").textContent = "paused";
});

$("#clear").addEventListener("click", async () => {
  try {
    await api.json("api/requests", { method: "DELETE" });
  } catch (err) {
    notify(err.message, true);
  }
});

journal.onChange((what) => {
  if (what.pending !== undefined) {
    $("#pending").textContent = `paused: ${what.pending} new`;
    return;
  }
  if (what.kind === "cleared") {
    selected.clear();
    $("#detail").hidden = true;
    selectedArrow = null;
  }
  refreshSoon();
  // A later response to an entry the ladder shows: redraw it.
  if (what.kind === "update" && ladderSeqs.includes(what.seq)) loadLadder();
  metrics.poke();
  if (!$("#tab-scenario").hidden) rulesSoon(); // the hit counts and counters move
});

const rulesSoon = debounce(() => Promise.all([scenario.loadRules(), scenario.loadStates()]), 1000);

// -- the event stream ---------------------------------------------------------------------
function connect() {
  const status = $("#conn");
  const source = new EventSource(api.eventsUrl());
  source.addEventListener("open", () => {
    // The server sends the whole journal first on every (re)connect.
    journal.entries.clear();
    status.textContent = "live";
    status.dataset.state = "live";
  });
  source.addEventListener("error", () => {
    status.textContent = source.readyState === EventSource.CLOSED ? "disconnected" : "reconnecting…";
    status.dataset.state = "down";
  });
  for (const kind of ["entry", "update"]) {
    source.addEventListener(kind, (event) => {
      try {
        journal.receive(kind, JSON.parse(event.data));
      } catch (err) {
        notify(`unreadable ${kind} event: ${err.message}`, true);
      }
    });
  }
  source.addEventListener("cleared", () => journal.receive("cleared", {}));
  source.addEventListener("scenario", () => {
    scenario.scenarioSwapped().catch((err) => notify(err.message, true));
  });
}

// -- rules into the rule filter -----------------------------------------------------------
function rulesChanged(rules) {
  const select = $("#filter-rule");
  const current = select.value;
  clear(select).append(h("option", { value: "" }, "any rule"), h("option", { value: "(none)" }, "no rule"));
  for (const rule of rules) {
    // The journal names a rule by its label; a name matches it too ([default] has none).
    const value = rule.name || rule.label;
    select.append(h("option", { value }, `${rule.name || "[default]"} (${rule.hits} hits)`));
  }
  select.value = [...select.options].some((o) => o.value === current) ? current : "";
}

// -- keyboard shortcuts -------------------------------------------------------------------
document.addEventListener("keydown", (event) => {
  const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(event.target.tagName);
  if (event.key === "/" && !typing) {
    event.preventDefault();
    openTab($("#tab-button-journal"));
    $("#filter-text").focus();
  } else if (event.key === "Escape" && !$("#detail").hidden && !typing) {
    $("#detail-close").click();
  }
});

// -- start --------------------------------------------------------------------------------
metrics = new MetricsTab($("#tab-metrics"));
scenario = new ScenarioTab($("#tab-scenario"), { onRulesChanged: rulesChanged, notify });
drawLegend($("#legend"));
const tabOfHash = () => tabs.find((t) => t.id === `tab-button-${location.hash.slice(1)}`);
openTab(tabOfHash() || tabs[0]);
window.addEventListener("hashchange", () => {
  const tab = tabOfHash();
  if (tab) openTab(tab);
});
scenario.load().catch((err) => notify(err.message, true));
refreshList();
connect();
window.sipresponderConsole = { journal, callKey }; // for debugging from the devtools
