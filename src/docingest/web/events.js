// The user's event stream (GET /events) read with fetch() and a stream reader: an EventSource
// cannot send the Authorization header, and the token never goes into a URL.

import { apiUrl, errorFrom, getToken, reportUnauthorized } from "./api.js";

const MAX_BACKOFF_MS = 30000;

/** Parses text/event-stream (WHATWG HTML, "Server-sent events") fed in arbitrary pieces. */
export class EventStreamParser {
  constructor(onMessage) {
    this.onMessage = onMessage; // ({type, data, id}) for each dispatched message
    this.buffer = "";
    this.type = "";
    this.data = [];
    this.lastEventId = "";
    this.retry = null;
  }

  feed(text) {
    this.buffer += text;
    // a trailing "\r" waits: the next piece may start with its "\n"
    const end = this.buffer.endsWith("\r") ? this.buffer.length - 1 : this.buffer.length;
    const lines = this.buffer.slice(0, end).split(/\r\n|\r|\n/);
    this.buffer = lines.pop() + this.buffer.slice(end); // the last piece may be half a line
    for (const line of lines) this.line(line);
  }

  line(line) {
    if (line === "") return this.dispatch();
    if (line.startsWith(":")) return; // a comment (": keepalive")
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.type = value;
    else if (field === "data") this.data.push(value);
    else if (field === "id" && !value.includes("\0")) this.lastEventId = value;
    else if (field === "retry" && /^\d+$/.test(value)) this.retry = Number(value);
  }

  dispatch() {
    if (this.data.length) {
      this.onMessage({ type: this.type || "message", data: this.data.join("\n"), id: this.lastEventId });
    }
    this.type = "";
    this.data = [];
  }
}

/**
 * One connection to the user's stream, reconnecting (with Last-Event-ID, after the server's
 * `retry` and a growing backoff) when the server ends it or the network drops.
 * `on(type, fn)` subscribes to a message type ("*" to all; data parsed as JSON); `onStatus(fn)`
 * hears "connecting" | "live" | "reconnecting" | "unavailable".
 */
export class UserEvents {
  constructor() {
    this.handlers = new Map();
    this.statusHandlers = new Set();
    this.lastEventId = "";
    this.controller = null;
    this.running = false;
    this.timer = null;
    this.status = "connecting";
  }

  on(type, fn) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(fn);
    return () => this.handlers.get(type)?.delete(fn);
  }

  onStatus(fn) {
    this.statusHandlers.add(fn);
    fn(this.status);
    return () => this.statusHandlers.delete(fn);
  }

  setStatus(status) {
    this.status = status;
    for (const fn of this.statusHandlers) fn(status);
  }

  emit(message) {
    let data = message.data;
    try {
      data = JSON.parse(data);
    } catch {
      /* keep the text */
    }
    const event = { type: message.type, id: message.id, data };
    for (const key of [message.type, "*"]) {
      for (const fn of this.handlers.get(key) || []) {
        try {
          fn(event);
        } catch (err) {
          console.error("event handler failed", err);
        }
      }
    }
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.connect(0);
  }

  stop() {
    this.running = false;
    clearTimeout(this.timer);
    this.controller?.abort();
    this.controller = null;
    this.lastEventId = "";
  }

  async connect(failures) {
    if (!this.running) return;
    const token = getToken();
    if (!token) return this.stop();
    this.setStatus(failures ? "reconnecting" : "connecting");
    const controller = new AbortController();
    this.controller = controller;
    let retryMs = 2000;
    let received = false;
    let fatal = false;
    try {
      const headers = { Accept: "text/event-stream", Authorization: `Bearer ${token}` };
      if (this.lastEventId) headers["Last-Event-ID"] = this.lastEventId;
      const res = await fetch(apiUrl("/events"), {
        headers,
        signal: controller.signal,
        cache: "no-store",
        credentials: "omit",
      });
      if (!res.ok) {
        const err = await errorFrom(res);
        fatal = res.status === 401 || res.status === 403;
        if (fatal) this.setStatus("unavailable");
        // an expired or revoked token (the server ends a stream when its token expires, so the
        // reconnect gets here): sign the tab out with the API's message, like any other 401
        if (res.status === 401 && getToken() === token) {
          this.running = false;
          reportUnauthorized(err);
        }
        throw err;
      }
      this.setStatus("live");
      const parser = new EventStreamParser((message) => {
        received = true;
        if (message.id) this.lastEventId = message.id;
        this.emit(message);
      });
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.feed(value);
        if (parser.retry !== null) retryMs = parser.retry;
      }
      failures = 0; // the server ended the stream (its time limit): reconnect after `retry`
    } catch (err) {
      if (controller.signal.aborted || !this.running) return;
      if (received) failures = 0;
      failures += 1;
      if (fatal) {
        this.running = false;
        return;
      }
      if (failures > 2) this.setStatus("unavailable");
    }
    if (!this.running || controller.signal.aborted) return;
    if (failures) this.setStatus("reconnecting");
    const backoff = failures ? Math.min(MAX_BACKOFF_MS, retryMs * 2 ** (failures - 1)) : retryMs;
    const jitter = failures ? Math.random() * 0.3 * backoff : 0;
    this.timer = setTimeout(() => this.connect(failures), backoff + jitter);
  }
}

/** The one stream of the signed-in user, shared by every page. */
export const events = new UserEvents();
