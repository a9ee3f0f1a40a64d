// DOM helpers and the formats every page shares.

/** An element: h("a", {href: "#/", class: "x", dataset: {id}, onclick}, "text", child, [more]). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key in el && typeof value !== "string" && key !== "list") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Replace `el`'s children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let ids = 0;
/** A fresh id for label/aria wiring. */
export const uid = (prefix = "id") => `${prefix}-${++ids}`;

/** Say `text` to screen readers (the page's polite live region). */
export function announce(text) {
  const region = document.getElementById("announcer");
  if (!region) return;
  region.textContent = "";
  setTimeout(() => (region.textContent = text), 50);
}

/** The pipeline's ten stages, in order (docingest.domain.STAGES). */
export const STAGES = [
  "uploaded",
  "parse_queued",
  "parsed",
  "parse_validated",
  "chunking",
  "chunks_stored",
  "embedding_queued",
  "embedding_in_progress",
  "embeddings_stored",
  "complete",
];
/** What a working job does while at a stage (services/progress._DOING). */
export const DOING = {
  uploaded: "verifying",
  parse_queued: "parsing",
  parsed: "validating",
  parse_validated: "chunking",
  chunking: "chunking",
  chunks_stored: "embedding",
  embedding_queued: "embedding",
  embedding_in_progress: "embedding",
  embeddings_stored: "storing",
};
export const STATES = ["waiting", "queued", "working", "retryable", "done", "failed"];

/** The step bar: `<ol class="steps">` of ten `<li>` (done / current / failed / pending). */
export function stepBar(stage, state) {
  const at = STAGES.indexOf(stage);
  const label = at < 0 ? "No stage yet" : `Stage ${at + 1} of ${STAGES.length}: ${stage}`;
  const ol = h("ol", { class: "steps", "aria-label": label });
  STAGES.forEach((name, i) => {
    let cls = "pending";
    if (i < at || (i === at && state === "done")) cls = "done";
    else if (i === at) cls = state === "failed" ? "failed" : "current";
    const li = h("li", { class: cls, title: `${name}: ${cls}` }, h("span", { class: "visually-hidden" }, `${name}, ${cls}`));
    if (i === at) {
      li.setAttribute("aria-current", "step");
      if (state) li.classList.add(`state-${state}`);
    }
    ol.append(li);
  });
  return ol;
}

/** A state as a badge: the word, and a shape besides the colour. */
export function stateBadge(state, { stalled = false } = {}) {
  const text = state || "none";
  const badge = h("span", { class: `badge state-${text}`, "data-testid": "state" }, text);
  if (!stalled) return badge;
  const why = "its worker stopped answering; another worker takes it over";
  return h("span", { class: "state-cell" }, badge, h("span", { class: "badge stalled", title: why }, "stalled"));
}

const numberFormat = new Intl.NumberFormat("en-US");
export const formatNumber = (n) => (n === null || n === undefined ? "–" : numberFormat.format(n));

/** 1234567 -> "1.2 MB". */
export function formatBytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i += 1;
  }
  return i === 0 ? `${v} B` : `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/** 39 -> "39s", 107 -> "1m47s", 7500 -> "2h05m" (as `docingest status` writes it). */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 9.95) return `${seconds.toFixed(1)}s`; // one format under 10 s: "0.0s", "3.0s", "4.2s"
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

const dateFormat = new Intl.DateTimeFormat("en-GB", {
  year: "numeric",
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});
const timeFormat = new Intl.DateTimeFormat("en-GB", { hour: "2-digit", minute: "2-digit", second: "2-digit" });

/** A `<time>` element showing a local date and time. */
export function timeEl(iso, { short = false } = {}) {
  if (!iso) return "–";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return h("time", { datetime: iso, title: d.toISOString() }, (short ? timeFormat : dateFormat).format(d));
}

/** "pages 3/12, chunks 40/100, eta 5s" from a job's progress (services/progress.format_progress). */
export function progressText(progress, state) {
  const p = progress || {};
  const parts = [];
  if (p.pages_total) parts.push(`pages ${p.pages_parsed || 0}/${p.pages_total}${p.pages_ocred ? ` (${p.pages_ocred} OCRed)` : ""}`);
  if (p.chunks_total !== null && p.chunks_total !== undefined) {
    parts.push(`chunks ${p.chunks_embedded || 0}/${p.chunks_total}`);
  }
  if (p.eta_s && state === "working") parts.push(`eta ${formatDuration(p.eta_s)}`);
  const warnings = (p.parse_warnings || []).length + (p.chunk_warnings || []).length;
  if (warnings) parts.push(`${warnings} warning${warnings > 1 ? "s" : ""}`);
  return parts.join(", ");
}

const TYPES = {
  "application/pdf": "PDF",
  "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "DOCX",
  "application/vnd.openxmlformats-officedocument.presentationml.presentation": "PPTX",
  "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "XLSX",
  "application/vnd.ms-excel.sheet.macroenabled.12": "XLSM",
  "application/vnd.ms-excel.sheet.macroEnabled.12": "XLSM",
  "application/vnd.openxmlformats-officedocument.presentationml.slideshow": "PPSX",
  "application/epub+zip": "EPUB",
  "application/vnd.oasis.opendocument.text": "ODT",
  "application/vnd.oasis.opendocument.spreadsheet": "ODS",
  "application/vnd.oasis.opendocument.presentation": "ODP",
  "application/rtf": "RTF",
  "text/rtf": "RTF",
  "message/rfc822": "E-mail",
  "application/vnd.ms-outlook": "Outlook message",
  "image/png": "PNG",
  "image/jpeg": "JPEG",
  "image/tiff": "TIFF",
  "image/webp": "WebP",
  "text/csv": "CSV",
  "text/tab-separated-values": "TSV",
  "application/jsonl": "JSON Lines",
  "application/x-ndjson": "JSON Lines",
  "text/html": "HTML",
  "application/xhtml+xml": "XHTML",
  "text/markdown": "Markdown",
  "text/x-markdown": "Markdown",
  "text/plain": "Text",
  "application/json": "JSON",
  "application/octet-stream": "Binary",
};
/** A MIME type as a short word ("PDF", "Markdown"). */
export const typeName = (mime) => TYPES[mime] || mime || "–";

/** What a document is called on the pages: its source, else its file name. */
export const docName = (doc) => doc.source || doc.filename || doc.document_id;

/** A visually hidden span (screen readers read it). */
export const hidden = (text) => h("span", { class: "visually-hidden" }, text);

/**
 * Ask with a modal `<dialog>`; resolves true when `confirmLabel` is pressed.
 * The dialog has a heading (its name), a message and two buttons.
 */
export function confirmDialog({ title, message, confirmLabel = "Delete", danger = true }) {
  return new Promise((resolve) => {
    const titleId = uid("dialog-title");
    const cancel = h("button", { type: "button", class: "button" }, "Cancel");
    const confirm = h("button", { type: "submit", class: danger ? "button danger" : "button primary", value: "confirm" }, confirmLabel);
    const form = h("form", { method: "dialog" }, h("h2", { id: titleId }, title), h("p", {}, message), h("div", { class: "dialog-actions" }, cancel, confirm));
    const dialog = h("dialog", { "aria-labelledby": titleId, class: "dialog" }, form);
    const previous = document.activeElement;
    cancel.addEventListener("click", () => dialog.close("cancel"));
    dialog.addEventListener("close", () => {
      dialog.remove();
      if (previous && previous.isConnected) previous.focus();
      resolve(dialog.returnValue === "confirm");
    });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

/** A message box: role="alert" for errors, role="status" otherwise. */
export function notice(kind, ...children) {
  return h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, ...children);
}

/** Call `fn` at most once per `ms`, with the last arguments, after calls stop. */
export function debounce(fn, ms) {
  let timer = null;
  const wrapped = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  wrapped.cancel = () => clearTimeout(timer);
  return wrapped;
}

/** Call `fn` at most once per `ms` (the first call waits `ms`; calls meanwhile are merged), so a
 * steady flow of calls still runs it every `ms` (a debounce would wait for the flow to stop). */
export function throttle(fn, ms) {
  let timer = null;
  const wrapped = () => {
    if (timer === null) timer = setTimeout(() => { timer = null; fn(); }, ms);
  };
  wrapped.cancel = () => { clearTimeout(timer); timer = null; };
  return wrapped;
}

/** Move focus to the page's heading after navigation (screen readers hear the new page). */
export function focusHeading(root) {
  const h1 = root.querySelector("h1");
  if (h1) {
    h1.setAttribute("tabindex", "-1");
    h1.focus({ preventScroll: true });
  }
}
