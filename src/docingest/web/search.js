// The Search page: a question over the user's documents, with mode, k and filters.

import { api } from "./api.js";
import { docName, fill, h, notice, uid } from "./ui.js";

const TYPES = {
  "": null,
  pdf: ["application/pdf"],
  docx: [
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.oasis.opendocument.text",
    "application/rtf",
    "text/rtf",
  ],
  slides: [
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.openxmlformats-officedocument.presentationml.slideshow",
    "application/vnd.oasis.opendocument.presentation",
  ],
  sheets: [
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.ms-excel.sheet.macroenabled.12",
    "application/vnd.oasis.opendocument.spreadsheet",
    "text/csv",
    "text/tab-separated-values",
  ],
  epub: ["application/epub+zip"],
  mail: ["message/rfc822", "application/vnd.ms-outlook"],
  image: ["image/png", "image/jpeg", "image/tiff", "image/webp"],
  html: ["text/html", "application/xhtml+xml"],
  markdown: ["text/markdown", "text/x-markdown"],
  text: ["text/plain"],
  json: ["application/json", "application/jsonl", "application/x-ndjson"],
};
const TYPE_LABELS = {
  "": "Any",
  pdf: "PDF",
  docx: "Text documents (DOCX, ODT, RTF)",
  slides: "Slides (PPTX, ODP)",
  sheets: "Spreadsheets (XLSX, ODS, CSV)",
  epub: "E-books (EPUB)",
  mail: "E-mail (EML, MSG)",
  image: "Images",
  html: "HTML",
  markdown: "Markdown",
  text: "Text",
  json: "JSON",
};

// the last search, shown again when the page is opened again in this tab
const last = { form: { q: "", mode: "hybrid", k: 10, source: "", where: "", type: "" }, reply: null, error: null };

/** `key=value` lines as the filter's `meta` object (a key given twice: any of the values). */
export function parseWhere(text) {
  const meta = {};
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  for (const [i, line] of lines.entries()) {
    const eq = line.indexOf("=");
    if (eq <= 0) throw new Error(`Where, line ${i + 1}: write key=value (got "${line}")`);
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    if (!key) throw new Error(`Where, line ${i + 1}: the key is empty`);
    if (key in meta) meta[key] = [].concat(meta[key], value);
    else meta[key] = value;
  }
  return meta;
}

/** The words of a query worth highlighting (letters and digits, 2+ characters). */
export function queryTerms(q) {
  const words = q.toLowerCase().match(/[\p{L}\p{N}]{2,}/gu) || [];
  return [...new Set(words)].sort((a, b) => b.length - a.length);
}

const escapeRegExp = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** A snippet of `text` around the first query term, the terms in `<mark>`. */
export function snippet(text, terms, width = 360) {
  const clean = text.replace(/\s+/g, " ").trim();
  let start = 0;
  if (terms.length) {
    const first = clean.toLowerCase().search(new RegExp(terms.map(escapeRegExp).join("|"), "u"));
    if (first > width / 3) start = first - Math.floor(width / 3);
  }
  let part = clean.slice(start, start + width);
  if (start > 0) part = "…" + part.replace(/^\S*\s/, "");
  if (start + width < clean.length) part = part.replace(/\s\S*$/, "") + "…";
  const out = [];
  if (!terms.length) return [part];
  const re = new RegExp(`(${terms.map(escapeRegExp).join("|")})`, "giu");
  let at = 0;
  for (const m of part.matchAll(re)) {
    if (m.index > at) out.push(part.slice(at, m.index));
    out.push(h("mark", {}, m[0]));
    at = m.index + m[0].length;
  }
  out.push(part.slice(at));
  return out;
}

function field(label, control, help = null) {
  const id = control.id || uid("f");
  control.id = id;
  const helpId = help ? `${id}-help` : null;
  if (helpId) control.setAttribute("aria-describedby", helpId);
  return h("div", { class: "field" }, h("label", { for: id }, label), control, help ? h("p", { class: "help", id: helpId }, help) : null);
}

function renderHits(box, reply, query) {
  const terms = queryTerms(query);
  if (!reply.results.length) {
    return fill(box, h("p", { class: "empty", role: "status" }, "No results. Try other words, the vector mode, or fewer filters."));
  }
  const ol = h("ol", { class: "hits", "aria-label": "Results" });
  for (const hit of reply.results) {
    const name = docName(hit);
    const score = hit.score.toFixed(2);
    ol.append(
      h(
        "li",
        { class: "hit", dataset: { documentId: hit.document_id } },
        h("div", { class: "hit-head" },
          h("a", { href: `#/documents/${hit.document_id}`, class: "hit-name" }, name),
          hit.page !== null && hit.page !== undefined
            ? h("span", { class: "hit-page", "data-testid": "hit-page" }, hit.page_end && hit.page_end !== hit.page ? `pages ${hit.page}–${hit.page_end}` : `page ${hit.page}`)
            : null,
          h("span", { class: "hit-score", title: "cosine similarity to the question, -1 to 1" }, "score ", score),
        ),
        hit.heading_path?.length ? h("div", { class: "hit-path" }, hit.heading_path.join(" › ")) : null,
        h("p", { class: "hit-text" }, snippet(hit.text, terms)),
      ),
    );
  }
  fill(box, h("p", { class: "muted", role: "status" }, `${reply.results.length} result${reply.results.length === 1 ? "" : "s"}, ${reply.mode}`), ol);
}

export function render(root) {
  document.title = "Search · docingest";
  const f = last.form;
  const q = h("input", { id: "search-q", name: "q", type: "search", required: true, value: f.q, autocomplete: "off", maxlength: 2000 });
  const mode = h("select", { id: "search-mode", name: "mode" }, h("option", { value: "hybrid" }, "hybrid"), h("option", { value: "vector" }, "vector"));
  mode.value = f.mode;
  const k = h("input", { id: "search-k", name: "k", type: "number", min: 1, max: 50, step: 1, value: String(f.k), required: true, inputmode: "numeric" });
  const source = h("input", { id: "search-source", name: "source_prefix", type: "text", value: f.source, autocomplete: "off" });
  const where = h("textarea", { id: "search-where", name: "where", rows: 2, spellcheck: "false" });
  where.value = f.where;
  const type = h("select", { id: "search-type", name: "type" }, Object.entries(TYPE_LABELS).map(([v, l]) => h("option", { value: v }, l)));
  type.value = f.type;
  const submit = h("button", { type: "submit", class: "button primary" }, "Search");
  const message = h("div");
  const results = h("div", { class: "results" });

  // a search that fails or cannot run leaves no earlier results under its message
  function forget() {
    last.reply = null;
    fill(results);
  }

  async function run(event) {
    event?.preventDefault();
    fill(message);
    Object.assign(last.form, { q: q.value, mode: mode.value, k: Number(k.value), source: source.value, where: where.value, type: type.value });
    const filter = {};
    if (!q.value.trim()) {
      // `required` lets spaces through; the API refuses them (422 invalid_request)
      forget();
      fill(message, notice("error", "Query: write at least one character that is not a space."));
      return q.focus();
    }
    try {
      const meta = parseWhere(where.value);
      if (Object.keys(meta).length) filter.meta = meta;
    } catch (err) {
      forget();
      fill(message, notice("error", err.message));
      return where.focus();
    }
    if (source.value.trim()) filter.source_prefix = source.value.trim();
    if (TYPES[type.value]) filter.mime = TYPES[type.value];
    submit.disabled = true;
    results.setAttribute("aria-busy", "true");
    try {
      const reply = await api("/search", { method: "POST", body: { q: q.value, mode: mode.value, k: Number(k.value), filter } });
      last.reply = reply;
      renderHits(results, reply, q.value);
    } catch (err) {
      forget();
      fill(message, notice("error", err.message));
    } finally {
      submit.disabled = false;
      results.removeAttribute("aria-busy");
    }
  }

  const form = h(
    "form",
    { class: "search-form", onsubmit: run },
    h("div", { class: "search-main" }, field("Query", q), submit),
    h("div", { class: "search-options" }, field("Mode", mode), field("Results", k)),
    h("details", { class: "filters", open: Boolean(f.source || f.where || f.type) },
      h("summary", {}, "Filters"),
      h("div", { class: "filter-grid" },
        field("Source prefix", source, "Only sources starting with this, e.g. docs/"),
        field("Where", where, "Metadata, one key=value a line, compared as text; a key on two lines matches either value"),
        field("Type", type),
      ),
    ),
  );
  // the browser's own validation blocks the submit (an empty query, Results out of 1–50)
  let invalidShown = false;
  form.addEventListener("invalid", (e) => {
    forget();
    if (invalidShown) return;
    invalidShown = true;
    setTimeout(() => (invalidShown = false));
    const label = form.querySelector(`label[for="${e.target.id}"]`)?.textContent || e.target.name;
    fill(message, notice("error", `${label}: ${e.target.validationMessage}`));
  }, true);
  fill(root, h("div", { class: "page-head" }, h("h1", {}, "Search")), form, message, results);
  if (last.reply) renderHits(results, last.reply, f.q);
  q.focus();
}
