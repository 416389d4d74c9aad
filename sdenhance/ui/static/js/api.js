// Talking to the server's /api/v1: every call sends the token as a bearer header.
// EventSource cannot send headers, so job events are read from a streamed fetch instead.

const TOKEN_KEY = "sdenhance-token";

export const TERMINAL = ["done", "failed", "cancelled"];

export class Unauthorized extends Error {}

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

export function takeTokenFromUrl() {
  // `#token=...` in the page's address (a fragment never reaches the server's logs)
  const match = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
}

export function setToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function hasToken() {
  return Boolean(sessionStorage.getItem(TOKEN_KEY));
}

function headers(extra = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

// The server's one-line message from an error response (FastAPI's lists joined).
async function errorMessage(response) {
  try {
    const body = await response.json();
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail)) {
      return body.detail
        .map((d) => `\`${(d.loc || []).slice(-1)[0]}\`: ${d.msg}`)
        .join("; ");
    }
  } catch {
    // not JSON: fall through to the status line
  }
  return `${response.status} ${response.statusText}`;
}

export async function request(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers(options.headers) });
  if (response.status === 401) throw new Unauthorized(await errorMessage(response));
  if (!response.ok) throw new ApiError(await errorMessage(response), response.status);
  return response;
}

export async function getJson(path) {
  return (await request(path)).json();
}

export async function submitJob(form) {
  return (await request("/api/v1/jobs", { method: "POST", body: form })).json();
}

export async function cancelJob(id) {
  return (await request(`/api/v1/jobs/${id}`, { method: "DELETE" })).json();
}

export async function resultBlob(id) {
  return (await request(`/api/v1/jobs/${id}/result`)).blob();
}

export async function jobInfo(id, names) {
  const query = new URLSearchParams();
  for (const [role, name] of Object.entries(names)) if (name) query.set(role, name);
  return getJson(`/api/v1/jobs/${id}/info?${query}`);
}

// Call `onStatus(status)` at every change of the job until it ends; returns the last status.
export async function followJob(id, onStatus) {
  const response = await request(`/api/v1/jobs/${id}/events`, {
    headers: { Accept: "text/event-stream" },
  });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let last = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = block
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trim())
        .join("\n");
      if (!data) continue; // a keep-alive comment
      last = JSON.parse(data);
      onStatus(last);
    }
  }
  // the stream ended early (a proxy, a dropped connection): poll until the job ends
  while (!last || !TERMINAL.includes(last.status)) {
    if (last) await new Promise((resolve) => setTimeout(resolve, 500));
    last = await getJson(`/api/v1/jobs/${id}`);
    onStatus(last);
  }
  return last;
}
