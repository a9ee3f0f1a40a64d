// The Upload page: files and folders dropped or chosen, each through the two-step upload
// (POST /upload with the SHA-256, then PUT to the signed URL), then its live stages.

import { api, ApiError } from "./api.js";
import { events } from "./events.js";
import { announce, DOING, fill, formatBytes, h, progressText, stepBar } from "./ui.js";

/** The API's MIME enum by extension (services/documents.MIME_EXTENSIONS). */
const MIME_BY_EXTENSION = {
  pdf: "application/pdf",
  docx: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
  pptx: "application/vnd.openxmlformats-officedocument.presentationml.presentation",
  ppsx: "application/vnd.openxmlformats-officedocument.presentationml.slideshow",
  xlsx: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
  xlsm: "application/vnd.ms-excel.sheet.macroenabled.12",
  epub: "application/epub+zip",
  odt: "application/vnd.oasis.opendocument.text",
  ods: "application/vnd.oasis.opendocument.spreadsheet",
  odp: "application/vnd.oasis.opendocument.presentation",
  rtf: "application/rtf",
  eml: "message/rfc822",
  msg: "application/vnd.ms-outlook",
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  tif: "image/tiff",
  tiff: "image/tiff",
  webp: "image/webp",
  csv: "text/csv",
  tsv: "text/tab-separated-values",
  jsonl: "application/jsonl",
  ndjson: "application/x-ndjson",
  html: "text/html",
  htm: "text/html",
  xhtml: "application/xhtml+xml",
  md: "text/markdown",
  markdown: "text/markdown",
  txt: "text/plain",
  text: "text/plain",
  json: "application/json",
};
const PARALLEL = 3;

/** The declared type of a file: from its extension, else what the browser says. */
export function mimeOf(file) {
  const ext = file.name.includes(".") ? file.name.split(".").pop().toLowerCase() : "";
  return MIME_BY_EXTENSION[ext] || file.type || "application/octet-stream";
}

/** Hex SHA-256 of a file's bytes. */
async function sha256(file) {
  const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** What the API accepts (MIME_BY_EXTENSION), in a user's words. */
const ACCEPTED =
  "PDF, Office (DOCX, PPTX, PPSX, XLSX, XLSM), OpenDocument, EPUB, RTF, e-mail (EML, MSG), image (PNG, JPEG, TIFF, WebP), HTML, Markdown, CSV, JSON or text files";

/** A refused file's type in a user's words: "a PNG image (image/png)", "an EXE file (...)". */
export function typeWords(name, mime) {
  const ext = name.includes(".") ? name.split(".").pop().toUpperCase() : "";
  if (!ext) return `a file of type ${mime}`;
  const kind = mime.startsWith("image/") ? "image" : mime.startsWith("video/") ? "video" : mime.startsWith("audio/") ? "audio file" : "file";
  // "an" before a letter whose name starts with a vowel sound (EXE, MP4, SVG, HTML...)
  const article = /^[AEFHILMNORSX]/.test(ext) ? "an" : "a";
  return `${article} ${ext} ${kind} (${mime})`;
}

// Uploads live as long as the tab: the list survives going to another page and back.
const list = h("ul", { class: "uploads", "aria-label": "Uploads" });
const byDocument = new Map(); // document_id -> Set of the rows following that document
const versionsBySource = new Map(); // source -> the document ids this page registered for it, in order
const registering = new Map(); // source -> Set of its POST /upload requests in flight
const goneIds = new Set(); // documents seen deleted or replaced
const replacedBy = new Map(); // document_id -> its newer version's id (version_replaced events)
const leaders = new Map(); // `${source}\0${sha256}` -> the row sending those bytes right now
const queue = [];
let running = 0;
let subscribed = false;

/** Why a document of `source` disappeared: replaced by a newer version (its id) or deleted.
 * Waits for this page's registrations of the same source in flight: the newer version may be
 * among them (its reply can come after the older document's 404). */
async function whyGone(documentId, source) {
  goneIds.add(documentId);
  await Promise.allSettled([...(registering.get(source) || [])]);
  const versions = (versionsBySource.get(source) || []).filter((id) => id !== documentId && !goneIds.has(id));
  const newer = replacedBy.get(documentId) || versions[versions.length - 1];
  return newer ? { kind: "replaced", newer } : { kind: "deleted", newer: null };
}

/** The rows of `documentId` (and what follows them) say it is gone, and why. */
async function markGone(documentId, source) {
  const why = await whyGone(documentId, source);
  for (const row of [...(byDocument.get(documentId) || [])]) row.goneOwn(why);
  byDocument.delete(documentId);
}

/** A new version of `source` was registered: its versions that serve nothing yet (waiting, in
 * flight, failed) are deleted by the API (the latest request wins), so their rows say so; a done
 * version serves until the new one completes (then a version_replaced event names it). */
function replaceOlder(source, newer) {
  for (const [documentId, rows] of byDocument) {
    if (documentId === newer || goneIds.has(documentId)) continue;
    const older = [...rows].find((row) => row.source === source && row.li.dataset.state !== "done");
    if (!older) continue;
    // a queued document no worker touched sends no stream message: ask once whether it is gone
    api(`/documents/${documentId}`).catch((err) => {
      if (err instanceof ApiError && err.status === 404) markGone(documentId, source);
    });
  }
}

/**
 * One file's row: its name, bytes bar, status and (once it exists) the document's stages.
 * The same bytes under the same source dropped more than once are sent once: the first row
 * (the leader) registers and uploads them, the others follow it (and then the document).
 */
class Item {
  constructor(file, source) {
    this.file = file;
    this.source = source;
    this.leader = null;
    this.followers = [];
    this.progress = h("progress", { max: 100, value: 0, "aria-label": `Upload of ${source}` });
    this.status = h("span", { class: "upload-status", "data-testid": "upload-status", role: "status" }, "Waiting");
    this.stages = h("div", { class: "upload-stages" });
    this.detail = h("div", { class: "upload-detail" });
    this.note = h("span", { class: "muted small upload-note" });
    this.more = h("div", { class: "upload-more" }); // the API's own message of a refusal
    this.li = h(
      "li",
      { class: "upload", dataset: { filename: source } },
      h("div", { class: "upload-head" }, h("span", { class: "upload-name" }, source), h("span", { class: "muted small" }, formatBytes(file.size)), this.note),
      this.status,
      this.stages,
      this.detail,
      this.more,
      this.progress,
    );
  }

  /** This row and the rows following it. */
  rows() {
    return [this, ...this.followers];
  }

  /** The row that sends the bytes (this one, or the one it follows). */
  get sender() {
    return this.leader || this;
  }

  say(text, kind = "") {
    for (const row of this.rows()) row.sayOwn(text, kind);
  }

  sayOwn(text, kind = "") {
    if (this.goneKind) return; // an upload still under way says nothing over "Deleted"
    this.status.textContent = text;
    this.status.className = `upload-status ${kind}`;
  }

  setProgress(value) {
    for (const row of this.rows()) row.progress.value = value;
  }

  refuse(err) {
    for (const row of this.rows()) row.refuseOwn(err);
  }

  refuseOwn(err) {
    if (this.goneKind) return;
    this.lastError = err;
    this.li.dataset.errorCode = err.code || "error";
    this.li.classList.add("refused");
    this.progress.value = 0;
    // a dashboard user declared no type: say what the file is and what is accepted, in words
    const friendly = err.code === "unsupported_type" && err.status === 415
      ? `${capitalize(typeWords(this.file.name, mimeOf(this.file)))} is not supported: upload ${ACCEPTED}.`
      : null;
    this.sayOwn(friendly || err.message || String(err), "error");
    if (!err.code) return;
    fill(this.detail, h("code", {}, err.code));
    if (friendly && err.message) fill(this.more, h("details", { class: "api-message" }, h("summary", {}, "The API's message"), h("p", {}, err.message)));
  }

  /** Follow `documentId`: stream messages about it reach this row (and its followers). */
  follow(documentId) {
    for (const row of this.rows()) row.followOwn(documentId);
  }

  followOwn(documentId) {
    if (this.documentId === documentId || this.goneKind) return;
    if (this.documentId) byDocument.get(this.documentId)?.delete(this);
    this.documentId = documentId;
    if (!byDocument.has(documentId)) byDocument.set(documentId, new Set());
    byDocument.get(documentId).add(this);
    fill(this.detail, h("a", { href: `#/documents/${documentId}` }, "Open document"));
  }

  /** `row` has the same bytes and source as this row: it follows this one from now on. */
  adopt(row) {
    row.leader = this;
    this.followers.push(row);
    row.note.textContent = "The same file as another row: sent once";
    row.progress.value = this.progress.value;
    row.sayOwn(this.status.textContent, this.status.className.replace("upload-status", "").trim());
    if (this.documentId) row.followOwn(this.documentId);
    if (this.lastDoc) row.showOwn(this.lastDoc);
  }

  /** The document's state from the API (a DocumentPublic, an UploadPublic or a job). */
  show(doc) {
    for (const row of this.rows()) row.showOwn(doc);
  }

  showOwn(doc) {
    if (this.goneKind) return;
    if (doc.document_id) this.followOwn(doc.document_id);
    if (!doc.state) return;
    this.lastDoc = doc;
    const sender = this.sender;
    this.li.dataset.state = doc.state;
    if (doc.stage) this.li.dataset.stage = doc.stage;
    fill(this.stages, stepBar(doc.stage, doc.state));
    const figures = progressText(doc.progress, doc.state);
    if (doc.state === "done") {
      this.progress.value = 100;
      this.sayOwn(sender.duplicate ? "Already ingested" : "Complete", "success");
    } else if (doc.state === "failed") {
      this.li.dataset.errorCode = doc.error_code || "error";
      this.sayOwn(`Failed: ${doc.error_code || "error"}: ${doc.error_message || ""}`, "error");
    } else if (doc.state === "waiting") {
      if (!sender.putting) this.sayOwn(sender.alreadyUploaded ? "Already uploaded" : "Waiting for the upload");
    } else {
      const doing = doc.state === "working" ? DOING[doc.stage] || doc.stage : doc.state;
      const text = doing.charAt(0).toUpperCase() + doing.slice(1);
      this.sayOwn(figures ? `${text}: ${figures}` : text);
    }
  }

  /** The document is gone: deleted, or replaced by a newer version of its source. */
  goneOwn({ kind, newer }) {
    if (this.goneKind) return;
    this.goneKind = kind;
    if (this.documentId) byDocument.get(this.documentId)?.delete(this);
    this.li.dataset.gone = kind;
    delete this.li.dataset.state; // no job any more
    delete this.li.dataset.stage;
    fill(this.stages);
    this.status.textContent = kind === "replaced" ? "Replaced by a newer version" : "Deleted";
    this.status.className = "upload-status muted";
    fill(this.detail, kind === "replaced" && newer ? h("a", { href: `#/documents/${newer}` }, "Open the newer version") : null);
  }
}

const capitalize = (s) => s.charAt(0).toUpperCase() + s.slice(1);

/** PUT the bytes to the signed URL with XMLHttpRequest (its upload events drive the bar). */
function put(item, reply) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(reply.upload_method || "PUT", reply.signed_url);
    for (const [k, v] of Object.entries(reply.upload_headers || {})) xhr.setRequestHeader(k, v);
    xhr.upload.addEventListener("progress", (e) => {
      if (!e.lengthComputable) return;
      const pct = Math.round((e.loaded / e.total) * 100);
      item.setProgress(pct);
      item.say(`Uploading ${pct}%`);
    });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) return resolve();
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        /* not JSON */
      }
      reject(new ApiError(xhr.status, body?.error_code || body?.error || `http_${xhr.status}`, body?.message || `the upload was refused (${xhr.status})`));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "network_error", "the upload failed: the storage could not be reached")));
    xhr.addEventListener("abort", () => reject(new ApiError(0, "aborted", "the upload was cancelled")));
    xhr.send(item.file);
  });
}

/** POST /upload, PUT the bytes when asked, then read where the document stands. */
async function register(item, digest) {
  item.say("Registering");
  const request = api("/upload", {
    method: "POST",
    body: { filename: item.file.name, bytes_len: item.file.size, mime: mimeOf(item.file), sha256: digest, source: item.source },
  });
  if (!registering.has(item.source)) registering.set(item.source, new Set());
  registering.get(item.source).add(request);
  let reply;
  try {
    reply = await request;
  } finally {
    registering.get(item.source).delete(request);
  }
  const versions = versionsBySource.get(item.source) || [];
  versionsBySource.set(item.source, [...versions.filter((id) => id !== reply.document_id), reply.document_id]);
  if (reply.created) replaceOlder(item.source, reply.document_id);
  // a reply that still asks for the bytes (a re-armed or not yet arrived upload) is no duplicate
  item.duplicate = reply.created === false && !reply.signed_url;
  item.follow(reply.document_id);
  if (reply.signed_url) {
    item.putting = true;
    item.show(reply);
    item.say("Uploading 0%");
    try {
      await put(item, reply);
      item.say("Uploaded");
    } catch (err) {
      // the signed URL works once: a 409 means these bytes are stored already (another row or
      // tab sent them), and the document goes on from there
      if (!(err instanceof ApiError && err.status === 409)) throw err;
      item.alreadyUploaded = true;
      item.say("Already uploaded");
    } finally {
      item.putting = false;
    }
  }
  item.setProgress(100);
  item.show(reply);
  if (item.duplicate) for (const row of item.rows()) row.li.dataset.duplicate = "true";
  // where it stands now (events after this come over the stream)
  item.show(await api(`/documents/${reply.document_id}`));
}

async function upload(item) {
  let key = null;
  try {
    item.say("Computing checksum");
    const digest = await sha256(item.file);
    key = `${item.source}\0${digest}`;
    const leader = leaders.get(key);
    if (leader) {
      key = null;
      return leader.adopt(item);
    }
    leaders.set(key, item);
    await register(item, digest);
  } catch (err) {
    item.putting = false;
    let missing = item.documentId && err instanceof ApiError && err.status === 404;
    if (item.documentId && !missing && !item.goneKind && err instanceof ApiError) {
      // a refused PUT may be a document deleted or replaced meanwhile: ask once
      missing = await api(`/documents/${item.documentId}`).then(() => false, (e) => e instanceof ApiError && e.status === 404);
    }
    if (item.goneKind) {
      /* already told */
    } else if (missing) {
      // the document went away meanwhile: deleted, or a newer version of its source replaced it
      await markGone(item.documentId, item.source);
    } else if (err instanceof ApiError) item.refuse(err);
    else item.refuse({ code: "network_error", message: `The API could not be reached: ${err.message}` });
  } finally {
    if (key) leaders.delete(key);
  }
}

function pump() {
  while (running < PARALLEL && queue.length) {
    const item = queue.shift();
    running += 1;
    upload(item).finally(() => {
      running -= 1;
      pump();
    });
  }
}

function subscribe() {
  if (subscribed) return;
  subscribed = true;
  events.on("document", ({ data }) => {
    for (const row of [...(byDocument.get(data?.document_id) || [])]) {
      if (!row.sender.putting) row.showOwn(data);
    }
  });
  events.on("version_replaced", ({ data }) => {
    for (const old of data?.payload?.replaced || []) replacedBy.set(String(old), data.document_id);
  });
  events.on("document_deleted", ({ data }) => {
    const id = data?.document_id;
    const row = [...(byDocument.get(id) || [])][0];
    if (row) markGone(id, row.source);
  });
}

// "Skipped 2 hidden files." under the drop zone (the page's, while it is shown)
let skippedNote = null;

/** The words for hidden entries left out of a folder: `{files, folders}` counts. */
function skippedText({ files, folders }) {
  const parts = [];
  if (files) parts.push(`${files} hidden file${files === 1 ? "" : "s"}`);
  if (folders) parts.push(`${folders} hidden folder${folders === 1 ? "" : "s"}`);
  return parts.length ? `Skipped ${parts.join(" and ")} (names starting with "."), as the CLI does.` : "";
}

/** Queue files (each `{file, source}`); `skipped` ({files, folders}) counts the hidden entries a
 * folder had, which are not uploaded. */
export function addFiles(entries, skipped = null) {
  subscribe();
  const text = skipped ? skippedText(skipped) : "";
  if (skippedNote) skippedNote.textContent = text;
  for (const { file, source } of entries) {
    const item = new Item(file, source);
    list.prepend(item.li);
    queue.push(item);
  }
  if (entries.length || text) announce(`${entries.length} file${entries.length === 1 ? "" : "s"} added to the uploads${text ? `. ${text}` : ""}`);
  pump();
}

/** A path inside a folder with a hidden segment (".git/config", "notes/.draft.md"): the CLI
 * leaves those out of a folder, and so does the dashboard. */
const hiddenPath = (path) => path.split("/").some((part) => part.startsWith("."));

/** Every file under a dropped directory entry, with its relative path; hidden files and folders
 * are not read, only counted in `skipped` ({files, folders}). */
async function walk(entry, prefix, out, skipped) {
  if (entry.name.startsWith(".")) {
    skipped[entry.isDirectory ? "folders" : "files"] += 1;
    return;
  }
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    out.push({ file, source: prefix + file.name });
  } else if (entry.isDirectory) {
    const reader = entry.createReader();
    for (;;) {
      const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
      if (!batch.length) break;
      for (const child of batch) await walk(child, `${prefix}${entry.name}/`, out, skipped);
    }
  }
}

/** The files of a drop: folders walked (webkitGetAsEntry), plain files as they are. */
async function droppedFiles(dataTransfer) {
  const entries = [];
  const plain = [];
  // read every item during the event: the list empties after it
  for (const item of Array.from(dataTransfer.items || [])) {
    if (item.kind !== "file") continue;
    const entry = item.webkitGetAsEntry ? item.webkitGetAsEntry() : null;
    if (entry && entry.isDirectory) entries.push(entry);
    else {
      const file = item.getAsFile();
      if (file) plain.push(file);
    }
  }
  if (!entries.length && !plain.length) plain.push(...Array.from(dataTransfer.files || []));
  const out = plain.map((file) => ({ file, source: file.webkitRelativePath || file.name }));
  const skipped = { files: 0, folders: 0 };
  for (const entry of entries) await walk(entry, "", out, skipped);
  return [out, skipped];
}

/** The files of an input; a folder's hidden files (a hidden segment in their path) are skipped,
 * only counted: `[entries, {files, folders}]`. */
function fromInput(input) {
  const out = [];
  const skipped = { files: 0, folders: 0 };
  for (const file of Array.from(input.files || [])) {
    if (file.webkitRelativePath && hiddenPath(file.webkitRelativePath)) skipped.files += 1;
    else out.push({ file, source: file.webkitRelativePath || file.name });
  }
  return [out, skipped];
}

export function render(root) {
  document.title = "Upload · docingest";
  const files = h("input", { id: "choose-files", type: "file", multiple: true, class: "file-input" });
  const folder = h("input", { id: "choose-folder", type: "file", webkitdirectory: true, multiple: true, class: "file-input" });
  files.addEventListener("change", () => { addFiles(...fromInput(files)); files.value = ""; });
  folder.addEventListener("change", () => { addFiles(...fromInput(folder)); folder.value = ""; });
  const zone = h(
    "div",
    { class: "dropzone", "data-testid": "dropzone", role: "region", tabindex: 0, "aria-label": "Drop files here", "aria-describedby": "dropzone-help" },
    uploadIcon(),
    h("p", { class: "dropzone-title" }, "Drop files or a folder here"),
    h("p", { id: "dropzone-help", class: "muted" }, "PDF, Office, OpenDocument, EPUB, RTF, e-mail, images (read by OCR), HTML, Markdown, CSV, JSON or text. Press Enter to choose files."),
    h("div", { class: "dropzone-buttons" },
      h("span", { class: "file-button" }, files, h("label", { for: "choose-files", class: "button primary" }, "Choose files")),
      h("span", { class: "file-button" }, folder, h("label", { for: "choose-folder", class: "button" }, "Choose a folder")),
    ),
  );
  zone.addEventListener("keydown", (e) => {
    if (e.target !== zone) return;
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      files.click();
    }
  });
  let depth = 0;
  zone.addEventListener("dragenter", (e) => { e.preventDefault(); depth += 1; zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => { depth = Math.max(0, depth - 1); if (!depth) zone.classList.remove("over"); });
  zone.addEventListener("dragover", (e) => { e.preventDefault(); if (e.dataTransfer) e.dataTransfer.dropEffect = "copy"; });
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    depth = 0;
    zone.classList.remove("over");
    if (e.dataTransfer) droppedFiles(e.dataTransfer).then(([found, skipped]) => addFiles(found, skipped));
  });
  const clear = h("button", { type: "button", class: "button subtle", onclick: () => {
    for (const li of [...list.children]) {
      if (li.dataset.state === "done" || li.dataset.errorCode || li.dataset.gone) li.remove();
    }
  } }, "Clear finished");

  skippedNote = h("p", { class: "muted small skipped-note", role: "status", "data-testid": "upload-skipped" });
  fill(
    root,
    h("div", { class: "page-head" }, h("h1", {}, "Upload")),
    zone,
    skippedNote,
    h("div", { class: "section-head" }, h("h2", {}, "Uploads"), clear),
    list,
  );
  // a drop that misses the zone must not open the file in the tab
  const stray = (e) => { if (!zone.contains(e.target)) e.preventDefault(); };
  window.addEventListener("dragover", stray);
  window.addEventListener("drop", stray);
  return () => {
    skippedNote = null;
    window.removeEventListener("dragover", stray);
    window.removeEventListener("drop", stray);
  };
}

function uploadIcon() {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", "dropzone-icon");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", "M12 16V4m0 0-4.5 4.5M12 4l4.5 4.5M4 15v3a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2v-3");
  svg.append(path);
  return svg;
}
