// The API client: the key lives in sessionStorage only (never in local storage, never a URL)
// and goes out as X-API-Key. The API's base is the page's own path without "/console",
// so the console works at /console (chalice local) and /<stage>/console (API Gateway).

const KEY = "zemeow.key";
const SCOPE = "zemeow.session"; // the session a session key belongs to ("" for the admin key)

export const base = location.pathname.replace(/\/console\/?$/, "");

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = (body && body.code) || (status === 0 ? "network_error" : "http_" + status);
    this.details = body && body.details;
  }
}

export const auth = {
  key: () => sessionStorage.getItem(KEY),
  scope: () => sessionStorage.getItem(SCOPE) || "",
  isAdmin: () => sessionStorage.getItem(KEY) !== null && !sessionStorage.getItem(SCOPE),
  save(key, sessionId) {
    sessionStorage.setItem(KEY, key);
    sessionStorage.setItem(SCOPE, sessionId || "");
  },
  forget() {
    sessionStorage.removeItem(KEY);
    sessionStorage.removeItem(SCOPE);
  },
};

export async function call(method, path, body, { key = auth.key(), signal } = {}) {
  const headers = { "Accept": "application/json" };
  if (key) headers["X-API-Key"] = key;
  const init = { method, headers, signal, cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(base + path, init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, { message: "The API did not answer. Is it running?" });
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { message: text.slice(0, 200) }; }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const get = (path, opts) => call("GET", path, undefined, opts);
export const post = (path, body, opts) => call("POST", path, body, opts);
export const put = (path, body, opts) => call("PUT", path, body, opts);
export const del = (path, opts) => call("DELETE", path, undefined, opts);

export const enc = encodeURIComponent;
