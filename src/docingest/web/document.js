// A document's page: details, stages with durations, the timeline of events, chunks, errors.

import { api, ApiError } from "./api.js";
import { events } from "./events.js";
import { download, errorBlock, retry, retryOutcome } from "./documents.js";
import {
  announce, confirmDialog, docName, DOING, fill, throttle, formatBytes, formatDuration, formatNumber, h,
  notice, progressText, stateBadge, stepBar, timeEl, typeName,
} from "./ui.js";

const CHUNK_PAGE = 20;

/** An event's payload in a few words: its error, worker, counts... */
export function eventDetail(event) {
  const p = event.payload || {};
  const parts = [];
  if (p.error_code) parts.push(h("code", {}, p.error_code));
  if (p.message || p.error_message) parts.push(h("span", { class: "msg" }, ` ${p.message || p.error_message}`));
  for (const [key, value] of Object.entries(p)) {
    if (["error_code", "message", "error_message"].includes(key)) continue;
    const text = typeof value === "object" && value !== null ? JSON.stringify(value) : String(value);
    parts.push(h("span", { class: "kv" }, h("span", { class: "k" }, key), " ", text.length > 160 ? text.slice(0, 160) + "…" : text));
  }
  return parts.length ? parts : "–";
}

/** A chunk's text, three lines until its button shows the rest. */
function chunkText(chunk) {
  const text = h("p", { class: "clamp" }, chunk.text);
  if (chunk.text.length < 240) return text;
  const toggle = h("button", { type: "button", class: "link-button", "aria-expanded": "false", "aria-label": `Show all of chunk ${chunk.ordinal}` }, "Show all");
  toggle.addEventListener("click", () => {
    const open = toggle.getAttribute("aria-expanded") !== "true";
    toggle.setAttribute("aria-expanded", String(open));
    text.classList.toggle("clamp", !open);
    toggle.textContent = open ? "Show less" : "Show all";
  });
  return [text, toggle];
}

function section(title, ...children) {
  const id = `section-${title.toLowerCase()}`;
  return h("section", { class: "card", "aria-labelledby": id }, h("h2", { id }, title), ...children);
}

export function render(root, { id }) {
  document.title = "Document · docingest";
  let doc = null;
  let disposed = false;
  let chunkOffset = 0;
  const heading = h("h1", { class: "doc-title" }, "Document");
  const status = h("div", { class: "page-status" });
  const actions = h("div", { class: "doc-actions" });
  const details = h("dl", { class: "details" });
  const stageBar = h("div", { class: "doc-steps" });
  const stagesTable = h("div", { class: "table-wrap" });
  const timeline = h("div", { class: "table-wrap" });
  const chunks = h("div");
  const errors = h("div");
  let timelineRows = null; // tbody, once the timeline is shown
  const seenEvents = new Set();

  const grid = h("div", { class: "doc-grid" },
    section("Details", details),
    h("div", { class: "doc-side" }, section("Stages", stageBar, stagesTable), section("Errors", errors)),
    section("Timeline", timeline),
    section("Chunks", chunks),
  );
  fill(
    root,
    h("p", { class: "crumbs" }, h("a", { href: "#/documents" }, "← Back to the list")),
    h("div", { class: "page-head" }, heading, actions),
    status,
    grid,
  );

  function button(label, onclick, cls = "button") {
    return h("button", { type: "button", class: cls, onclick }, label);
  }

  function showDoc() {
    const name = docName(doc);
    heading.textContent = name;
    document.title = `${name} · docingest`;
    root.dataset.documentId = doc.document_id;
    root.dataset.state = doc.state || "";
    root.dataset.stage = doc.stage || "";
    const row = (k, v) => [h("dt", {}, k), h("dd", {}, v)];
    const metaEntries = Object.entries(doc.meta || {});
    fill(
      details,
      row("Source", doc.source),
      row("File name", doc.filename),
      row("Type", `${typeName(doc.mime)} (${doc.mime})`),
      row("Size", `${formatBytes(doc.bytes_len)} (${formatNumber(doc.bytes_len)} bytes)`),
      row("SHA-256", h("code", { class: "hash" }, doc.file_sha256)),
      row("Pages", formatNumber(doc.page_count)),
      row("Chunks", formatNumber(doc.chunks)),
      row("Created", timeEl(doc.created_at)),
      row("Updated", timeEl(doc.job_updated_at || doc.updated_at)),
      row("Metadata", metaEntries.length ? h("ul", { class: "meta" }, metaEntries.map(([k, v]) => h("li", {}, h("span", { class: "k" }, k), " ", JSON.stringify(v)))) : "None"),
      row("Serving version", doc.serving_document_id
        ? (doc.serving_document_id === doc.document_id ? "This version" : h("a", { href: `#/documents/${doc.serving_document_id}` }, doc.serving_document_id))
        : "None yet"),
    );
    fill(
      stageBar,
      stepBar(doc.stage, doc.state),
      h("p", { class: "stage-line" }, stateBadge(doc.state, { stalled: doc.stalled }), " ", doc.stage ? doc.stage.replace(/_/g, " ") : "", " ",
        h("span", { "data-testid": "progress", class: "muted" }, progressText(doc.progress, doc.state)),
        doc.attempts ? h("span", { class: "muted" }, ` · attempt ${doc.attempts}`) : null),
    );
    fill(errors, errorBlock(doc) || h("p", { class: "muted" }, "None"));
    fill(actions);
    if (gone) return;
    if (doc.state === "failed" && doc.job_id) actions.append(button("Retry", onRetry, "button primary"));
    actions.append(button("Download", onDownload), button("Delete", onDelete, "button danger"));
  }

  async function onRetry(e) {
    e.currentTarget.disabled = true;
    try {
      const job = await retry(doc);
      Object.assign(doc, { stage: job.stage, state: job.state, progress: job.progress, attempts: job.attempts, error_code: job.error_code, error_message: job.error_message });
      showDoc();
      fill(status, notice("success", retryOutcome(doc, job), job.signed_url || job.state === "waiting" ? [" ", h("a", { href: "#/upload" }, "Go to Upload.")] : null));
    } catch (err) {
      fill(status, notice("error", `Retry failed: ${err.message}`));
    }
  }

  async function onDownload() {
    try {
      await download(doc);
    } catch (err) {
      fill(status, notice("error", `Download failed: ${err.message}`));
    }
  }

  async function onDelete() {
    const ok = await confirmDialog({ title: `Delete ${docName(doc)}?`, message: "Its stored file, chunks and vectors are removed. This cannot be undone.", confirmLabel: "Delete" });
    if (!ok) return;
    try {
      await api(`/documents/${id}`, { method: "DELETE" });
      announce(`Deleted ${docName(doc)}.`);
      location.hash = "#/documents";
    } catch (err) {
      fill(status, notice("error", `Delete failed: ${err.message}`));
    }
  }

  function eventRow(ev) {
    const warn = /fail|error|retry|takeover|lease|warning/.test(ev.type);
    return h("tr", { class: warn ? "attention" : "", dataset: { eventId: ev.event_id, type: ev.type } },
      h("td", { "data-label": "Time", class: "nowrap" }, timeEl(ev.created_at, { short: true })),
      h("td", { "data-label": "Stage" }, ev.stage || "–"),
      h("td", { "data-label": "Type" }, h("span", { class: `event-type${warn ? " warn" : ""}` }, ev.type)),
      h("td", { "data-label": "Detail", class: "detail" }, eventDetail(ev)),
    );
  }

  async function loadTimeline() {
    try {
      const reply = await api(`/documents/${id}/timeline`);
      if (disposed) return;
      const stages = reply.stages || [];
      const notes = (st) => {
        const parts = [];
        if (st.retries) parts.push(`${st.retries} ${st.retries === 1 ? "retry" : "retries"}`);
        if (st.lease_takeovers) parts.push(`${st.lease_takeovers} lease ${st.lease_takeovers === 1 ? "takeover" : "takeovers"}`);
        if (st.error_code) parts.push(h("code", {}, st.error_code));
        if (!st.reached) parts.push("not completed");
        return parts.length ? parts.flatMap((p, i) => (i ? [", ", p] : [p])) : "–";
      };
      fill(stagesTable, stages.length
        ? h("table", { class: "compact stages" },
          h("caption", { class: "visually-hidden" }, "Stage durations"),
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Work"), h("th", { scope: "col", class: "num" }, "Took"), h("th", { scope: "col", class: "num" }, "Attempts"), h("th", { scope: "col" }, "Notes"))),
          h("tbody", {}, stages.map((st) => h("tr", { class: st.retries || st.lease_takeovers || st.error_code ? "attention" : "" },
            h("td", { "data-label": "Work" }, DOING[st.stage] || st.stage, " ", h("span", { class: "muted small" }, `${st.stage} → ${st.reached || "…"}`)),
            h("td", { class: "num", "data-label": "Took" }, st.seconds === null || st.seconds === undefined ? "–" : formatDuration(st.seconds)),
            h("td", { class: "num", "data-label": "Attempts" }, formatNumber(st.attempts)),
            h("td", { "data-label": "Notes" }, notes(st)),
          ))))
        : h("p", { class: "muted" }, "No stage worked at yet."));
      seenEvents.clear();
      timelineRows = h("tbody", {}, (reply.events || []).map((ev) => { seenEvents.add(String(ev.event_id)); return eventRow(ev); }));
      fill(timeline, reply.truncated ? h("p", { class: "muted" }, "Only the first events are shown: this document has many more.") : null, h("table", { class: "compact events" },
        h("caption", { class: "visually-hidden" }, "Events"),
        h("thead", {}, h("tr", {}, ["Time", "Stage", "Type", "Detail"].map((c) => h("th", { scope: "col" }, c)))),
        timelineRows));
    } catch (err) {
      if (!disposed) fill(timeline, notice("error", `The timeline could not be loaded: ${err.message}`));
    }
  }

  async function loadChunks() {
    const focused = chunks.contains(document.activeElement) ? document.activeElement.textContent : null;
    try {
      const reply = await api(`/documents/${id}/chunks`, { query: { limit: CHUNK_PAGE, offset: chunkOffset } });
      if (disposed) return;
      const total = reply.total ?? reply.chunks.length;
      if (!reply.chunks.length) {
        return fill(chunks, h("p", { class: "muted" }, doc && doc.state !== "done" ? "No chunks yet: they appear once the document is chunked and stored." : "No chunks."));
      }
      // aria-disabled, not disabled: the button pressed keeps the focus at either end, so Enter
      // pressed again does nothing rather than act on the other button the focus fell to
      const pagerButton = (label, enabled, offset) => h("button", {
        type: "button", class: "button small", "aria-disabled": String(!enabled),
        onclick: () => { if (enabled) { chunkOffset = offset; loadChunks(); } },
      }, label);
      const prev = pagerButton("Previous chunks", chunkOffset > 0, Math.max(0, chunkOffset - CHUNK_PAGE));
      const next = pagerButton("Next chunks", chunkOffset + reply.chunks.length < total, chunkOffset + CHUNK_PAGE);
      fill(chunks,
        h("div", { class: "table-wrap" }, h("table", { class: "compact chunks" },
          h("caption", { class: "visually-hidden" }, "Chunks"),
          h("thead", {}, h("tr", {}, ["#", "Page", "Heading path", "Text"].map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", {}, reply.chunks.map((c) => h("tr", { dataset: { chunkId: c.chunk_id } },
            h("td", { class: "num", "data-label": "#" }, c.ordinal),
            h("td", { class: "num", "data-label": "Page" }, c.page === null || c.page === undefined ? "–" : (c.page_end && c.page_end !== c.page ? `${c.page}–${c.page_end}` : c.page)),
            h("td", { "data-label": "Heading path" }, (c.heading_path || []).join(" › ") || "–"),
            h("td", { class: "chunk-text", "data-label": "Text" }, chunkText(c)),
          ))))),
        h("div", { class: "pager" }, h("span", { class: "range" }, `${formatNumber(chunkOffset + 1)}–${formatNumber(chunkOffset + reply.chunks.length)} of ${formatNumber(total)}`), h("div", { class: "pager-buttons" }, prev, next)),
      );
      if (focused) [prev, next].find((b) => b.textContent === focused)?.focus();
    } catch (err) {
      if (!disposed) fill(chunks, notice("error", `The chunks could not be loaded: ${err.message}`));
    }
  }

  async function load() {
    try {
      doc = await api(`/documents/${id}`);
      if (disposed) return;
      showDoc();
      loadTimeline();
      loadChunks();
    } catch (err) {
      if (disposed) return;
      const missing = err instanceof ApiError && err.status === 404;
      heading.textContent = missing ? "Document not found" : "Document";
      document.title = `${heading.textContent} · docingest`;
      // nothing to show under the message: no empty cards
      grid.remove();
      fill(status, notice("error", missing ? "No document of yours has this id: it may have been deleted." : err.message));
    }
  }

  let gone = false;
  /** The document is no more: say so, and offer no action on it. */
  function showGone() {
    gone = true;
    root.dataset.gone = "true";
    fill(actions);
    fill(status, notice("error", "This document was deleted (or replaced by a newer version). ", h("a", { href: "#/documents" }, "Back to the list.")));
  }

  /** Read the document again (once per documents_changed, throttled); a 404 means it was deleted. */
  const recheck = throttle(async () => {
    try {
      const fresh = await api(`/documents/${id}`);
      if (disposed || gone) return;
      doc = fresh;
      showDoc();
    } catch (err) {
      if (!disposed && err instanceof ApiError && err.status === 404) showGone();
    }
  }, 1000);

  const refreshTimeline = throttle(loadTimeline, 1000);
  const unsubscribe = [
    events.on("document", ({ data }) => {
      if (!doc || data?.document_id !== id) return;
      const before = doc.state;
      doc = { ...doc, ...data };
      showDoc();
      refreshTimeline();
      if (doc.state === "done" && before !== "done") loadChunks();
    }),
    events.on("document_deleted", ({ data }) => {
      if (data?.document_id !== id) return;
      showGone();
    }),
    // the user's documents changed elsewhere (another tab, the CLI): is this one still there?
    events.on("documents_changed", () => { if (doc && !gone) recheck(); }),
    events.on("*", ({ type, data }) => {
      if (type === "document" || type === "document_deleted" || !data || data.document_id !== id || !timelineRows) return;
      if (seenEvents.has(String(data.event_id))) return;
      seenEvents.add(String(data.event_id));
      timelineRows.append(eventRow(data));
    }),
  ];
  load();
  return () => {
    disposed = true;
    refreshTimeline.cancel();
    recheck.cancel();
    unsubscribe.forEach((fn) => fn());
  };
}
