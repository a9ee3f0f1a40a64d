// The Upload page: files and folders dropped or chosen, each through the two-step upload
// (POST /upload with the SHA-256, then PUT to the signed URL), then its live stages.

import { api, ApiError } from "./api.js";
import { events } from "./events.js";
import { announce, DOING, fill, formatBytes, h, progressText, stepBar } from "./ui.js";

/** The API's MIME enum by extension (services/documents.MIME_EXTENSIONS). */
const MIME_BY_EXTENSION = {
  pdf: "application/pdf",
  docx: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
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

// Uploads live as long as the tab: the list survives going to another page and back.
const list = h("ul", { class: "uploads", "aria-label": "Uploads" });
const byDocument = new Map(); // document_id -> item
const queue = [];
let running = 0;
let subscribed = false;

/** One file's row: its name, bytes bar, status and (once it exists) the document's stages. */
class Item {
  constructor(file, source) {
    this.file = file;
    this.source = source;
    this.progress = h("progress", { max: 100, value: 0, "aria-label": `Upload of ${source}` });
    this.status = h("span", { class: "upload-status", "data-testid": "upload-status", role: "status" }, "Waiting");
    this.stages = h("div", { class: "upload-stages" });
    this.detail = h("div", { class: "upload-detail" });
    this.li = h(
      "li",
      { class: "upload", dataset: { filename: source } },
      h("div", { class: "upload-head" }, h("span", { class: "upload-name" }, source), h("span", { class: "muted small" }, formatBytes(file.size))),
      this.status,
      this.stages,
      this.detail,
      this.progress,
    );
  }

  say(text, kind = "") {
    this.status.textContent = text;
    this.status.className = `upload-status ${kind}`;
  }

  refuse(err) {
    this.li.dataset.errorCode = err.code || "error";
    this.li.classList.add("refused");
    this.progress.value = 0;
    this.say(err.message || String(err), "error");
    if (err.code) this.detail.replaceChildren(h("code", {}, err.code));
  }

  /** The document's state from the API (a DocumentPublic, an UploadPublic or a job). */
  show(doc) {
    if (doc.document_id && !this.documentId) {
      this.documentId = doc.document_id;
      byDocument.set(doc.document_id, this);
      this.detail.replaceChildren(h("a", { href: `#/documents/${doc.document_id}` }, "Open document"));
    }
    if (!doc.state) return;
    this.li.dataset.state = doc.state;
    if (doc.stage) this.li.dataset.stage = doc.stage;
    fill(this.stages, stepBar(doc.stage, doc.state));
    const figures = progressText(doc.progress, doc.state);
    if (doc.state === "done") {
      this.progress.value = 100;
      this.say(this.duplicate ? "Already ingested" : "Complete", "success");
    } else if (doc.state === "failed") {
      this.li.dataset.errorCode = doc.error_code || "error";
      this.say(`Failed: ${doc.error_code || "error"}: ${doc.error_message || ""}`, "error");
    } else if (doc.state === "waiting") {
      if (!this.putting) this.say("Waiting for the upload");
    } else {
      const doing = doc.state === "working" ? DOING[doc.stage] || doc.stage : doc.state;
      const text = doing.charAt(0).toUpperCase() + doing.slice(1);
      this.say(figures ? `${text}: ${figures}` : text);
    }
  }
}

/** PUT the bytes to the signed URL with XMLHttpRequest (its upload events drive the bar). */
function put(item, reply) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(reply.upload_method || "PUT", reply.signed_url);
    for (const [k, v] of Object.entries(reply.upload_headers || {})) xhr.setRequestHeader(k, v);
    xhr.upload.addEventListener("progress", (e) => {
      if (!e.lengthComputable) return;
      const pct = Math.round((e.loaded / e.total) * 100);
      item.progress.value = pct;
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

async function upload(item) {
  try {
    item.say("Computing checksum");
    const digest = await sha256(item.file);
    item.say("Registering");
    const reply = await api("/upload", {
      method: "POST",
      body: { filename: item.file.name, bytes_len: item.file.size, mime: mimeOf(item.file), sha256: digest, source: item.source },
    });
    item.duplicate = reply.created === false && !reply.reupload;
    if (reply.signed_url) {
      item.putting = true;
      item.show(reply);
      item.say("Uploading 0%");
      await put(item, reply);
      item.putting = false;
      item.progress.value = 100;
      item.say("Uploaded");
    } else {
      item.progress.value = 100;
    }
    item.show(reply);
    if (item.duplicate) {
      item.say("Already ingested", "success");
      item.li.dataset.duplicate = "true";
    }
    // where it stands now (events after this come over the stream)
    item.show(await api(`/documents/${reply.document_id}`));
    if (item.duplicate && item.li.dataset.state !== "failed") item.say("Already ingested", "success");
  } catch (err) {
    item.putting = false;
    if (err instanceof ApiError) item.refuse(err);
    else item.refuse({ code: "network_error", message: `The API could not be reached: ${err.message}` });
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

/** Queue files (each `{file, source}`). */
export function addFiles(entries) {
  if (!subscribed) {
    subscribed = true;
    events.on("document", ({ data }) => {
      const item = data && byDocument.get(data.document_id);
      if (item && !item.putting) item.show(data);
    });
  }
  for (const { file, source } of entries) {
    const item = new Item(file, source);
    list.prepend(item.li);
    queue.push(item);
  }
  if (entries.length) announce(`${entries.length} file${entries.length === 1 ? "" : "s"} added to the uploads`);
  pump();
}

/** Every file under a dropped directory entry, with its relative path. */
async function walk(entry, prefix, out) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    out.push({ file, source: prefix + file.name });
  } else if (entry.isDirectory) {
    const reader = entry.createReader();
    for (;;) {
      const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
      if (!batch.length) break;
      for (const child of batch) await walk(child, `${prefix}${entry.name}/`, out);
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
  for (const entry of entries) await walk(entry, "", out);
  return out;
}

const fromInput = (input) => Array.from(input.files || [], (file) => ({ file, source: file.webkitRelativePath || file.name }));

export function render(root) {
  document.title = "Upload · docingest";
  const files = h("input", { id: "choose-files", type: "file", multiple: true, class: "file-input" });
  const folder = h("input", { id: "choose-folder", type: "file", webkitdirectory: true, multiple: true, class: "file-input" });
  files.addEventListener("change", () => { addFiles(fromInput(files)); files.value = ""; });
  folder.addEventListener("change", () => { addFiles(fromInput(folder)); folder.value = ""; });
  const zone = h(
    "div",
    { class: "dropzone", "data-testid": "dropzone", role: "region", tabindex: 0, "aria-label": "Drop files here", "aria-describedby": "dropzone-help" },
    uploadIcon(),
    h("p", { class: "dropzone-title" }, "Drop files or a folder here"),
    h("p", { id: "dropzone-help", class: "muted" }, "PDF, DOCX, HTML, Markdown and text. Press Enter to choose files."),
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
    if (e.dataTransfer) droppedFiles(e.dataTransfer).then(addFiles);
  });
  const clear = h("button", { type: "button", class: "button subtle", onclick: () => {
    for (const li of [...list.children]) {
      if (li.dataset.state === "done" || li.dataset.errorCode) li.remove();
    }
  } }, "Clear finished");

  fill(
    root,
    h("div", { class: "page-head" }, h("h1", {}, "Upload")),
    zone,
    h("div", { class: "section-head" }, h("h2", {}, "Uploads"), clear),
    list,
  );
  // a drop that misses the zone must not open the file in the tab
  const stray = (e) => { if (!zone.contains(e.target)) e.preventDefault(); };
  window.addEventListener("dragover", stray);
  window.addEventListener("drop", stray);
  return () => {
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
