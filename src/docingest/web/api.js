// The API client: the bearer token (sessionStorage only, never a URL), JSON requests, errors.

const meta = (name, fallback) => document.querySelector(`meta[name="${name}"]`)?.content || fallback;

/** The API's prefix (rendered by the server into index.html). */
export const API = meta("docingest-api", "/api/v2").replace(/\/$/, "");
/** development | test | production (rendered by the server). */
export const ENVIRONMENT = meta("docingest-environment", "production");

const TOKEN_KEY = "docingest.token";

export const getToken = () => sessionStorage.getItem(TOKEN_KEY);
export const setToken = (token) => sessionStorage.setItem(TOKEN_KEY, token);
export const clearToken = () => sessionStorage.removeItem(TOKEN_KEY);

/** An API refusal: HTTP status, the stable error_code and the message a user can act on. */
export class ApiError extends Error {
  constructor(status, code, message, body = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

let onUnauthorized = () => {};
/** Called once when a request made with the stored token is answered 401 (expired, revoked). */
export function whenUnauthorized(fn) {
  onUnauthorized = fn;
}
/** Tells the dashboard a request made with the stored token was answered 401 (`err`: ApiError). */
export function reportUnauthorized(err) {
  onUnauthorized(err);
}

/** The user id a JWT names (its `sub`), read without verifying: for display only. */
export function tokenSubject(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = decodeURIComponent(
      Array.from(atob(part), (c) => "%" + c.charCodeAt(0).toString(16).padStart(2, "0")).join(""),
    );
    const sub = JSON.parse(json).sub;
    return typeof sub === "string" ? sub : null;
  } catch {
    return null;
  }
}

/** `path` under the API with `query` (arrays repeat the parameter; null/"" are left out). */
export function apiUrl(path, query = {}) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v !== null && v !== undefined && v !== "") params.append(key, String(v));
    }
  }
  const qs = params.toString();
  return API + path + (qs ? "?" + qs : "");
}

/** An ApiError from a reply that is not ok (the API's `{error_code, message}`, or the storage
 * service's `{statusCode, error, message}`, or whatever text came back). */
export async function errorFrom(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    /* not JSON */
  }
  const code = body?.error_code || body?.error || `http_${res.status}`;
  const message = body?.message || `${res.status} ${res.statusText || "error"}`;
  return new ApiError(res.status, code, message, body);
}

/**
 * A JSON request to the API with the stored token (or `token`).
 * Resolves to the parsed body (null for 204); rejects with ApiError, or TypeError when the
 * network fails.
 */
export async function api(path, { method = "GET", query, body, token, signal } = {}) {
  const bearer = token ?? getToken();
  const headers = { Accept: "application/json" };
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(apiUrl(path, query), {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
    cache: "no-store",
    credentials: "omit",
  });
  if (!res.ok) {
    const err = await errorFrom(res);
    if (res.status === 401 && token === undefined && bearer) onUnauthorized(err);
    throw err;
  }
  if (res.status === 204) return null;
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (data && typeof data === "object") Object.defineProperty(data, "httpStatus", { value: res.status });
  return data;
}
