// The Health page: the queue by stage and state, workers, failures, the embedder, generations.

import { api } from "./api.js";
import { events } from "./events.js";
import { fill, formatNumber, h, notice, STAGES, STATES, throttle, timeEl } from "./ui.js";

function section(title, ...children) {
  const id = `section-${title.toLowerCase()}`;
  return h("section", { class: "card", "aria-labelledby": id }, h("h2", { id }, title), ...children);
}

/** A card across the whole row of the grid (a table too wide for half of it). */
function wideSection(title, ...children) {
  const card = section(title, ...children);
  card.classList.add("wide");
  return card;
}

function table(caption, columns, rows, { numeric = [] } = {}) {
  return h("div", { class: "table-wrap" }, h("table", { class: "compact" },
    h("caption", { class: "visually-hidden" }, caption),
    h("thead", {}, h("tr", {}, columns.map((c, i) => h("th", { scope: "col", class: numeric.includes(i) ? "num" : "" }, c)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c, i) => h(i === 0 ? "th" : "td", { scope: i === 0 ? "row" : null, class: numeric.includes(i) ? "num" : "", "data-label": columns[i] }, c ?? "–")))))));
}

/** A value of unknown shape, readably. */
function plain(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number") return formatNumber(value);
  if (typeof value === "string" && /^\d{4}-\d\d-\d\dT/.test(value)) return timeEl(value);
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

/** A list of objects as a table with their keys as columns. */
function objectsTable(caption, items) {
  if (!items?.length) return h("p", { class: "muted" }, "None.");
  const keys = [...new Set(items.flatMap((o) => Object.keys(o)))];
  const numeric = keys.map((k, i) => (items.every((o) => typeof o[k] === "number" || o[k] == null) ? i : -1)).filter((i) => i >= 0);
  return table(caption, keys.map((k) => k.replace(/_/g, " ")), items.map((o) => keys.map((k) => plain(o[k]))), { numeric });
}

function queue(jobs) {
  if (!jobs?.length) return h("p", { class: "muted" }, "No jobs.");
  const counts = new Map();
  for (const { stage, state, count } of jobs) counts.set(`${stage}/${state}`, (counts.get(`${stage}/${state}`) || 0) + count);
  const states = STATES.filter((s) => jobs.some((j) => j.state === s));
  const stages = STAGES.filter((s) => jobs.some((j) => j.stage === s));
  const rows = stages.map((stage) => [stage, ...states.map((state) => (counts.get(`${stage}/${state}`) ? formatNumber(counts.get(`${stage}/${state}`)) : "·"))]);
  const totals = states.map((state) => jobs.filter((j) => j.state === state).reduce((n, j) => n + j.count, 0));
  rows.push(["All stages", ...totals.map(formatNumber)]);
  const wrap = table("Jobs by stage and state", ["Stage", ...states], rows, { numeric: states.map((_, i) => i + 1) });
  wrap.querySelector("tbody tr:last-child").classList.add("totals");
  wrap.classList.add("queue"); // a real table on phones too: it scrolls inside its box
  return wrap;
}

function buckets(items) {
  if (!items.every((b) => "bucket" in b)) return objectsTable("Rate-limit buckets", items);
  return table("Rate-limit buckets", ["Bucket", "Left", "Capacity", "Refill a second", "Blocked until"],
    items.map((b) => [h("code", {}, b.bucket), formatNumber(Math.floor(b.tokens)), formatNumber(b.capacity), formatNumber(Math.round(b.refill_per_second * 100) / 100), b.blocked_until ? timeEl(b.blocked_until) : "not blocked"]), { numeric: [1, 2, 3] });
}

function generations(items) {
  if (!items?.length || !items.every((g) => "label" in g)) return objectsTable("Embedding generations of your chunks", items);
  const pct = (x) => (typeof x === "number" ? `${(x * 100).toFixed(x < 0.1 && x > 0 ? 1 : 0)}%` : "–");
  return table("Embedding generations of your chunks", ["Generation", "Chunks", "Waiting", "Users served", "Share"],
    items.map((g) => [h("code", {}, g.label), formatNumber(g.chunks), formatNumber(g.waiting), formatNumber(g.serving_users), pct(g.share)]), { numeric: [1, 2, 3, 4] });
}

// a worker with no job that was last seen longer ago than this is shown as quiet
const QUIET_AFTER_S = 120;

/** What a worker was last seen doing: working, idle, or quiet ("not seen for N min"): a quiet
 * worker may be idle or stopped; the summary cannot tell, so the page does not say it is dead. */
export function workerActivity(worker, now = Date.now()) {
  if (worker.jobs_working > 0) return h("span", { class: "badge state-working", "data-activity": "working" }, "working");
  const seen = Date.parse(worker.last_seen);
  const ago = Number.isNaN(seen) ? null : Math.max(0, (now - seen) / 1000);
  if (ago === null || ago <= QUIET_AFTER_S) return h("span", { class: "badge", "data-activity": "idle" }, "idle");
  const minutes = Math.floor(ago / 60);
  return h("span", { class: "badge quiet", "data-activity": "quiet", title: "no job and no work seen lately: the worker may be idle or stopped" },
    `quiet: not seen for ${minutes} min`);
}

export function render(root) {
  document.title = "Health · docingest";
  let disposed = false;
  const body = h("div", { class: "health-grid" }, h("p", { class: "muted" }, "Loading…"));
  const updated = h("span", { class: "muted small" });
  const refreshButton = h("button", { type: "button", class: "button subtle", onclick: () => load() }, "Refresh");
  fill(root, h("div", { class: "page-head" }, h("h1", {}, "Health"), h("div", { class: "doc-actions" }, updated, refreshButton)), body);

  async function load() {
    try {
      const s = await api("/summary");
      if (disposed) return;
      const e = s.embedder || {};
      fill(
        body,
        section("Queue", queue(s.jobs)),
        wideSection("Workers",
          h("p", { class: "muted small", id: "workers-help" }, "Workers seen in the last hour, across all users (the whole installation)."),
          s.workers?.length
            ? table("Workers seen in the last hour, across all users", ["Worker", "Jobs working", "Stalled", "Last seen", "Activity"], s.workers.map((w) => [h("code", {}, w.worker_id), formatNumber(w.jobs_working), formatNumber(w.jobs_stalled ?? 0), timeEl(w.last_seen), workerActivity(w)]), { numeric: [1, 2] })
            : h("p", { class: "muted" }, "No worker seen in the last hour.")),
        section("Failures",
          s.failures?.length
            ? table("Failed jobs by error code", ["Error code", "Jobs", "Last", "Last message"], s.failures.map((f) => [h("code", {}, f.error_code || "–"), formatNumber(f.count), timeEl(f.last_at), f.message || "–"]), { numeric: [1] })
            : h("p", { class: "muted" }, "No failed jobs.")),
        section("Embedder",
          h("dl", { class: "details" }, [["Provider", e.provider], ["Model", e.model], ["Dimensions", e.dimensions], ["Description", e.description], ["Requests a minute", e.rpm ?? "no limit"], ["Tokens a minute", e.tpm ?? "no limit"]]
            .filter(([, v]) => v !== undefined).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, plain(v))])),
          e.buckets?.length ? [h("h3", {}, "Rate-limit buckets"), buckets(e.buckets)] : null),
        section("Generations", generations(s.generations)),
      );
      fill(updated, "Updated ", timeEl(new Date().toISOString(), { short: true }));
    } catch (err) {
      if (!disposed) fill(body, notice("error", `The summary could not be loaded: ${err.message}`));
    }
  }

  const refresh = throttle(load, 3000);
  const off = events.on("document", () => refresh());
  load();
  return () => {
    disposed = true;
    refresh.cancel();
    off();
  };
}
