// The admin HTTP API as the console uses it. The token comes from the page's own URL
// (?token=...): fetches send it as a Bearer header, EventSource (which cannot set headers)
// as ?token=, the way the server accepts it.

const token = new URLSearchParams(window.location.search).get("token");

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

// Sent on every request: the server refuses a POST, PUT or DELETE that a page of
// another site could have sent (a form, a plain fetch), and none of those can set it.
const CSRF_HEADER = { "X-Sipresponder": "1" };

function headers(extra) {
  const all = { ...CSRF_HEADER, ...(extra || {}) };
  if (token) all.Authorization = `Bearer ${token}`;
  return all;
}

/** fetch() with the token; the Response, whatever its status. */
export function request(path, options = {}) {
  return fetch(path, { ...options, headers: headers(options.headers), cache: "no-store" });
}

/** The JSON of a 2xx answer; an ApiError naming the server's error otherwise. */
export async function json(path, options = {}) {
  const response = await request(path, options);
  const raw = await response.text();
  let body = null;
  try {
    body = raw ? JSON.parse(raw) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    const why = body && body.error ? body.error : raw.slice(0, 200) || response.statusText;
    throw new ApiError(response.status, `${options.method || "GET"} ${path}: ${response.status} ${why}`, body);
  }
  return body;
}

export async function text(path) {
  const response = await request(path);
  if (!response.ok) throw new ApiError(response.status, `GET ${path}: ${response.status}`, null);
  return response.text();
}

/** The URL of the event stream, with the token as a query parameter. */
export function eventsUrl() {
  return token ? `api/events?token=${encodeURIComponent(token)}` : "api/events";
}

/** A file download that needs the Bearer header: fetched, then saved. */
export async function fetchBlob(path) {
  const response = await request(path);
  if (!response.ok) throw new ApiError(response.status, `GET ${path}: ${response.status}`, null);
  return response.blob();
}

export const hasToken = Boolean(token);
