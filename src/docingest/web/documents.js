// The Documents page: the user's documents, live over the one event stream.

import { api, ApiError } from "./api.js";
import { events } from "./events.js";
import {
  announce, confirmDialog, debounce, docName, fill, formatBytes, focusHeading, formatNumber, h, notice, throttle,
  DOING, progressText, stateBadge, STATES, stepBar, typeName,
} from "./ui.js";

const PAGE_SIZE = 50;
// kept while the tab lives: coming back to the page shows the same filters and page
const view = { state: "", q: "", offset: 0 };

/** Start the download of a document's original: a short-lived signed URL, then navigate to it. */
export async function download(doc) {
  const reply = await api(`/documents/${doc.document_id}/download`, { method: "POST" });
  const a = h("a", { href: reply.signed_url, download: reply.filename || "", class: "visually-hidden" });
  document.body.append(a);
  a.click();
  a.remove();
}

/** Retry a failed document's job; returns the API's reply (the job). */
export async function retry(doc) {
  return api(`/jobs/${doc.job_id}/retry`, { method: "POST" });
}

/** What a retry did, in words: `job` is the API's JobRetryPublic. A job whose upload was refused
 * (or whose original was not kept) is re-armed to wait for a new upload: `signed_url` is set and
 * its state is `waiting`; the file has to be dropped again. */
export function retryOutcome(doc, job) {
  const name = docName(doc);
  if (job.signed_url || job.state === "waiting") {
    return `${name} now waits for its file: drop it again on the Upload page (same name, ${doc.filename}).`;
  }
  return `Retrying ${name}.`;
}

/** Under the step bar: what a working job does ("parsing"), else the stage reached. */
export function stageWords(doc) {
  if (!doc.stage) return "–";
  if (doc.state === "working" && DOING[doc.stage]) return `${DOING[doc.stage]}…`;
  return doc.stage.replace(/_/g, " ");
}

/** A failure's code and message. */
export function errorBlock(doc) {
  if (doc.state !== "failed" && !doc.error_code) return null;
  return h(
    "div",
    { class: "error-detail" },
    h("code", { "data-testid": "error-code" }, doc.error_code || "error"),
    " ",
    h("span", { "data-testid": "error-message" }, doc.error_message || ""),
  );
}

export function render(root) {
  document.title = "Documents · docingest";
  const status = h("div", { class: "page-status", role: "status" });
  const selected = new Set();
  const rows = new Map(); // document_id -> {tr, doc}
  let total = null;
  let count = 0;
  let disposed = false;
  let loading = null;
  let retrying = null; // {id, name, notice} while "Retrying X." shows: replaced by the outcome

  const stateSelect = h(
    "select",
    { id: "filter-state", onchange: () => { view.state = stateSelect.value; view.offset = 0; load(); } },
    h("option", { value: "" }, "All"),
    STATES.map((s) => h("option", { value: s }, s)),
  );
  stateSelect.value = view.state;
  const search = h("input", { id: "filter-name", type: "search", value: view.q, autocomplete: "off", placeholder: "part of a name or source" });
  const searchChanged = debounce(() => { view.q = search.value.trim(); view.offset = 0; load(); }, 250);
  search.addEventListener("input", searchChanged);

  const selectedCount = h("span", { class: "muted selected-count", "aria-live": "polite" });
  const deleteButton = h("button", { type: "button", class: "button danger", disabled: true, onclick: () => deleteSelected() }, "Delete selected");
  const selectAll = h("input", { type: "checkbox", "aria-label": "Select all on this page", onchange: () => {
    for (const { tr, doc } of rows.values()) {
      const box = tr.querySelector("input.select");
      box.checked = selectAll.checked;
      if (selectAll.checked) selected.add(doc.document_id);
      else selected.delete(doc.document_id);
    }
    syncSelection();
  } });
  const prev = h("button", { type: "button", class: "button", onclick: () => { view.offset = Math.max(0, view.offset - PAGE_SIZE); load(); } }, "Previous page");
  const next = h("button", { type: "button", class: "button", onclick: () => { view.offset += PAGE_SIZE; load(); } }, "Next page");
  const range = h("span", { class: "range", "aria-live": "polite" });
  const tbody = h("tbody");
  const table = h(
    "table",
    { class: "documents" },
    h("caption", { class: "visually-hidden" }, "Documents"),
    h("thead", {}, h("tr", {},
      h("th", { scope: "col", class: "col-select" }, selectAll),
      h("th", { scope: "col" }, "Name"),
      h("th", { scope: "col" }, "Type"),
      h("th", { scope: "col", class: "num" }, "Size"),
      h("th", { scope: "col", class: "num" }, "Pages"),
      h("th", { scope: "col", class: "num" }, "Chunks"),
      h("th", { scope: "col" }, "Stage"),
      h("th", { scope: "col" }, "State"),
      h("th", { scope: "col", class: "num" }, "Attempts"),
      h("th", { scope: "col" }, "Progress"),
      h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")),
    )),
    tbody,
  );

  fill(
    root,
    h("div", { class: "page-head" }, h("h1", {}, "Documents"), h("a", { class: "button primary", href: "#/upload" }, "Add files")),
    h("div", { class: "toolbar" },
      h("div", { class: "field" }, h("label", { for: "filter-state" }, "State"), stateSelect),
      h("div", { class: "field grow" }, h("label", { for: "filter-name" }, "Filter by name"), search),
      h("div", { class: "toolbar-actions" }, selectedCount, deleteButton),
    ),
    status,
    h("div", { class: "table-wrap" }, table),
    h("div", { class: "pager" }, range, h("div", { class: "pager-buttons" }, prev, next)),
  );

  function syncSelection() {
    for (const id of [...selected]) if (!rows.has(id)) selected.delete(id);
    deleteButton.disabled = selected.size === 0;
    selectedCount.textContent = selected.size ? `${formatNumber(selected.size)} selected` : "";
    selectAll.checked = rows.size > 0 && selected.size === rows.size;
    selectAll.indeterminate = selected.size > 0 && selected.size < rows.size;
  }

  function syncPager() {
    const first = count ? view.offset + 1 : 0;
    const last = view.offset + count;
    const of = total === null ? "" : ` of ${formatNumber(total)}`;
    range.textContent = count ? `${formatNumber(first)}–${formatNumber(last)}${of}` : `0${of}`;
    prev.disabled = view.offset === 0;
    next.disabled = total === null ? count < PAGE_SIZE : last >= total;
  }

  function actionButton(label, name, onclick, extra = "") {
    return h("button", { type: "button", class: `button small ${extra}`, "aria-label": `${label} ${name}`, dataset: { focusKey: label }, onclick }, label);
  }

  function buildRow(doc) {
    const name = docName(doc);
    const box = h("input", { type: "checkbox", class: "select", "aria-label": `Select ${name}`, checked: selected.has(doc.document_id), dataset: { focusKey: "select" } });
    box.addEventListener("change", () => {
      if (box.checked) selected.add(doc.document_id);
      else selected.delete(doc.document_id);
      syncSelection();
    });
    const actions = h("div", { class: "row-actions" });
    if (doc.state === "failed" && doc.job_id) {
      actions.append(actionButton("Retry", name, (e) => act(e.currentTarget, doc, "retry")));
    }
    actions.append(actionButton("Download", name, (e) => act(e.currentTarget, doc, "download"), "subtle"));
    const secondary = doc.filename && doc.source && doc.filename !== doc.source.split("/").pop() ? doc.filename : null;
    const tr = h(
      "tr",
      { dataset: { documentId: doc.document_id, state: doc.state || "", stage: doc.stage || "" } },
      h("td", { class: "col-select" }, box),
      h("td", { class: "col-name", "data-label": "Name" }, h("a", { href: `#/documents/${doc.document_id}`, dataset: { focusKey: "name" } }, name), secondary ? h("div", { class: "muted small" }, secondary) : null),
      h("td", { "data-label": "Type" }, typeName(doc.mime)),
      h("td", { class: "num", "data-label": "Size" }, formatBytes(doc.bytes_len)),
      h("td", { class: "num", "data-label": "Pages" }, formatNumber(doc.page_count)),
      h("td", { class: "num", "data-label": "Chunks" }, formatNumber(doc.chunks ?? doc.progress?.chunks_total)),
      h("td", { class: "col-stage", "data-label": "Stage" }, stepBar(doc.stage, doc.state), h("div", { class: "stage-name" }, stageWords(doc))),
      h("td", { "data-label": "State" }, stateBadge(doc.state, { stalled: doc.stalled })),
      h("td", { class: "num", "data-label": "Attempts" }, formatNumber(doc.attempts)),
      h("td", { class: "col-progress", "data-label": "Progress" }, h("span", { "data-testid": "progress" }, progressText(doc.progress, doc.state)), errorBlock(doc)),
      h("td", { class: "col-actions" }, actions),
    );
    return tr;
  }

  /** Put `doc`'s row in place of the old one, keeping the keyboard focus where it was. */
  function updateRow(doc) {
    const entry = rows.get(doc.document_id);
    if (!entry) return false;
    const merged = { ...entry.doc, ...doc };
    const tr = buildRow(merged);
    const focusKey = entry.tr.contains(document.activeElement) ? document.activeElement.dataset.focusKey : null;
    entry.tr.replaceWith(tr);
    rows.set(doc.document_id, { tr, doc: merged });
    if (focusKey) (tr.querySelector(`[data-focus-key="${focusKey}"]`) || tr.querySelector("a"))?.focus();
    return true;
  }

  async function act(button, doc, action) {
    button.disabled = true;
    const name = docName(doc);
    try {
      if (action === "retry") {
        const job = await retry(doc);
        updateRow({ document_id: doc.document_id, job_id: job.job_id, stage: job.stage, state: job.state, progress: job.progress, attempts: job.attempts, error_code: job.error_code, error_message: job.error_message });
        const box = notice("success", retryOutcome(doc, job));
        fill(status, box);
        retrying = job.state === "waiting" ? null : { id: doc.document_id, name, box };
      } else {
        await download(doc);
      }
    } catch (err) {
      fill(status, notice("error", `${action === "retry" ? "Retry" : "Download"} of ${name} failed: ${err.message}`));
    } finally {
      if (button.isConnected) button.disabled = false;
    }
  }

  async function deleteSelected() {
    const ids = [...selected];
    if (!ids.length) return;
    const names = ids.map((id) => docName(rows.get(id).doc));
    const what = ids.length === 1 ? names[0] : `${ids.length} documents`;
    const ok = await confirmDialog({
      title: `Delete ${what}?`,
      message: ids.length === 1
        ? "Its stored file, chunks and vectors are removed. This cannot be undone."
        : "Their stored files, chunks and vectors are removed. This cannot be undone.",
      confirmLabel: "Delete",
    });
    if (!ok) return;
    deleteButton.disabled = true;
    const failures = [];
    let done = 0;
    for (const id of ids) {
      try {
        await api(`/documents/${id}`, { method: "DELETE" });
        done += 1;
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) done += 1;
        else failures.push(`${docName(rows.get(id).doc)}: ${err.message}`);
      }
      selected.delete(id);
    }
    const text = `Deleted ${done === 1 && ids.length === 1 ? names[0] : `${done} document${done === 1 ? "" : "s"}`}.`;
    fill(status, failures.length ? notice("error", `${text} Not deleted: ${failures.join("; ")}`) : notice("success", text));
    announce(text);
    await load();
    if (!root.contains(document.activeElement) || document.activeElement.disabled) focusHeading(root);
  }

  async function load() {
    const ticket = {};
    loading = ticket;
    const query = { limit: PAGE_SIZE, offset: view.offset, state: view.state || null, q: view.q || null };
    try {
      const reply = await api("/documents", { query });
      if (disposed || loading !== ticket) return;
      total = typeof reply.total === "number" ? reply.total : null;
      if (total !== null && view.offset > 0 && view.offset >= total) {
        view.offset = total > 0 ? Math.floor((total - 1) / PAGE_SIZE) * PAGE_SIZE : 0; // past the end: the last page
        return load();
      }
      rows.clear();
      const trs = reply.documents.map((doc) => {
        const tr = buildRow(doc);
        rows.set(doc.document_id, { tr, doc });
        return tr;
      });
      count = reply.documents.length;
      const filtered = view.state || view.q;
      const none = filtered ? "No document matches these filters." : ["No documents yet. ", h("a", { href: "#/upload" }, "Add some files"), " to start."];
      fill(tbody, count ? trs : h("tr", { class: "empty-row" }, h("td", { colspan: 11, class: "empty" }, none)));
      syncSelection();
      syncPager();
      if (status.querySelector(".notice.error.load")) fill(status);
    } catch (err) {
      if (disposed || loading !== ticket) return;
      const box = notice("error", `The documents could not be loaded: ${err.message}`);
      box.classList.add("load");
      fill(status, box);
    }
  }

  const refresh = throttle(() => load(), 1000);
  let lastStatus = events.status;
  const unsubscribe = [
    events.on("document", ({ data }) => {
      if (!data || !data.document_id) return;
      if (retrying && data.document_id === retrying.id && ["failed", "done"].includes(data.state) && retrying.box.isConnected) {
        // the retry's outcome in place of "Retrying X."
        const { name } = retrying;
        fill(status, data.state === "done"
          ? notice("success", `${name} is done.`)
          : notice("error", `The retry of ${name} failed again${data.error_code ? `: ${data.error_code}` : ""}${data.error_message ? ` (${data.error_message})` : ""}.`));
        retrying = null;
      }
      if (!updateRow(data) && view.offset === 0) refresh(); // a new document: the list moves
      else if (view.state && data.state && data.state !== view.state) refresh(); // it left the filter
    }),
    events.on("document_deleted", ({ data }) => {
      if (data && rows.has(data.document_id)) refresh();
    }),
    // documents added or deleted elsewhere (another tab, the CLI) that the other messages may
    // not show: read the current page again
    events.on("documents_changed", () => refresh()),
    events.onStatus((s) => {
      if (s === "live" && lastStatus !== "live") refresh(); // after a reconnect: catch up
      lastStatus = s;
    }),
  ];

  load();
  return () => {
    disposed = true;
    refresh.cancel();
    searchChanged.cancel();
    unsubscribe.forEach((fn) => fn());
  };
}

