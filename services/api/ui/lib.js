// What every view of pykron's UI shares: calls to the /v1 API (with the token, when one is
// set), building DOM without innerHTML (so job names and output are never markup), formats.

export const API = "/v1";
export const ZERO_TIME = "0001-01-01T00:00:00Z";
const TOKEN_KEY = "pykron.token";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function authHeaders() {
  const token = localStorage.getItem(TOKEN_KEY);
  return token ? { "X-Dkron-Token": token } : {};
}

export function setToken(token) {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
  rights = null;
}

// What the token may do, as GET /v1/acl/token/self tells it: null rules = everything (the ACL
// off, or a management token). The API judges every call anyway; this only hides the actions
// that would be refused. Globs as the server reads them (shell patterns over the whole path).
let rights = null;

export async function loadRights() {
  const { data } = await api("GET", "/acl/token/self");  // a 401 (an unknown token) goes to the caller
  rights = data.Type === "management" ? { rules: null } : { rules: data.Rules || {} };
  return rights;
}

function globRegExp(glob) {
  let out = "^";
  for (const c of glob) out += c === "*" ? ".*" : c === "?" ? "." : c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  return new RegExp(out + "$");
}

export function can(path, capability) {
  if (!rights || rights.rules === null) return true;
  let granted = false;
  for (const policy of Object.values(rights.rules)) {
    for (const [glob, caps] of Object.entries(policy || {})) {
      if (!globRegExp(glob).test(path)) continue;
      if (caps.includes("deny")) return false;
      granted = granted || caps.includes(capability);
    }
  }
  return granted;
}

export const jobPath = (name) => `/v1/jobs/${name}`;

// One API call → {data, headers}; an answer other than 2xx throws ApiError with the API's own
// message (plain text for job writes, {"error"} elsewhere).
export async function api(method, path, body) {
  const init = { method, headers: authHeaders() };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(API + path, init);
  const type = resp.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await resp.json() : await resp.text();
  if (!resp.ok) {
    const message = typeof data === "string" ? data : (data && data.error) || resp.statusText;
    throw new ApiError(resp.status, message || `HTTP ${resp.status}`);
  }
  return { data, headers: resp.headers };
}

export const enc = encodeURIComponent;

// h("td", {class: "num"}, "3") → <td class="num">3</td>; children may be nodes, text or arrays.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, value);
  for (const child of children.flat()) el.append(child instanceof Node ? child : String(child));
  return el;
}

export function when(iso) {
  if (!iso || iso === ZERO_TIME) return "-";
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// A time in a zone, as the job reads it ("2026-11-01 01:45:00 EDT"), with UTC on hover.
export function inZone(iso, zone) {
  if (!iso || iso === ZERO_TIME) return "-";
  let parts;
  try {
    parts = Object.fromEntries(new Intl.DateTimeFormat("en-US", {
      timeZone: zone || "UTC", hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
    }).formatToParts(new Date(iso)).map((p) => [p.type, p.value]));
  } catch (err) {
    return when(iso); // a zone this browser does not know: its own time
  }
  const utc = new Date(iso).toISOString().replace(".000Z", "Z");
  return h("time", { datetime: iso, title: `${utc} (UTC)` },
    `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second} ${parts.timeZoneName}`);
}

// The zone a job's times are read in: its schedule's TZ= prefix, else its timezone, else the cluster's default.
export function jobZone(job, fallback) {
  const prefix = /^(?:CRON_)?TZ=(\S+)/.exec((job.schedule || "").trim());
  return (prefix && prefix[1]) || job.timezone || fallback || "UTC";
}

let defaultZoneAsked = null;

// The cluster's default_timezone (asked once per page load): the zone of jobs without one.
export function defaultZone() {
  defaultZoneAsked ??= api("GET", "/settings").then(({ data }) => data.default_timezone || "UTC")
    .catch(() => { defaultZoneAsked = null; return "UTC"; });
  return defaultZoneAsked;
}

// How late a scheduled run started: after its tick plus the jitter drawn for it; null for a manual run.
export function lateness(execution) {
  if (!execution.scheduled_at || !execution.started_at || execution.started_at === ZERO_TIME) return null;
  return Date.parse(execution.started_at) - Date.parse(execution.scheduled_at) - (execution.jitter_ms || 0);
}

export function millis(ms) {
  if (ms === null || ms === undefined) return "-";
  return Math.abs(ms) < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

export function running(execution) {
  return !execution.finished_at || execution.finished_at === ZERO_TIME;
}

// Seconds an execution took (or has taken so far), or null before it started.
export function duration(execution) {
  if (!execution.started_at || execution.started_at === ZERO_TIME) return null;
  const end = running(execution) ? Date.now() : Date.parse(execution.finished_at);
  return Math.max(0, (end - Date.parse(execution.started_at)) / 1000);
}

export function seconds(value) {
  if (value === null || value === undefined) return "-";
  return value < 10 ? `${value.toFixed(2)}s` : `${value.toFixed(1)}s`;
}

export function badge(status) {
  const text = status || "untriggered";
  return h("span", { class: `badge ${text}`, "data-status": text }, text);
}

export function notice(text) {
  const el = document.getElementById("notice");
  el.textContent = text;
  el.hidden = !text;
}

const REFRESH_MS = 2000;

// Runs fn now and again `ms` after each run ends, until stopped. Errors go to the notice line;
// a 401 (no token, or one unknown, deleted or expired) asks the app for a token; a 403 (a
// token whose policies do not allow it) says so, and keeps the token.
export function poller(fn, ms = REFRESH_MS) {
  let stopped = false;
  let timer = null;
  let inflight = Promise.resolve();
  const tick = async () => {
    if (stopped) return;
    try {
      inflight = fn();
      await inflight;
      if (!stopped) notice("");
    } catch (err) {
      if (stopped) return;
      if (err instanceof ApiError && err.status === 401) {
        window.dispatchEvent(new CustomEvent("pykron:unauthorized", { detail: err.message }));
        return;
      }
      notice(err instanceof ApiError && err.status === 403
        ? `Not allowed with this token: ${err.message}` : `Cannot reach the API: ${err.message}`);
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  tick();
  // stop() resolves once a refresh under way has ended, so that a caller about to delete what
  // it shows makes no request that would race the deletion.
  return { stop() { stopped = true; clearTimeout(timer); return inflight.catch(() => null); } };
}

export function go(hash) {
  location.hash = hash;
}

// Follows an execution's output (server-sent events over fetch, so the token header goes
// along): onText(chunk) per output event, onEnd(execution) once. Resumes from the last byte
// offset after a dropped connection; stops quietly when signal is aborted.
export async function follow(job, id, { onText, onEnd, signal }) {
  let offset = 0;
  const url = `${API}/jobs/${enc(job)}/executions/${enc(id)}/output`;
  while (!signal.aborted) {
    const headers = authHeaders();
    if (offset) headers["Last-Event-ID"] = String(offset);
    try {
      const resp = await fetch(url, { headers, signal });
      if (!resp.ok) return;
      const reader = resp.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const event = parseEvent(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
          if (event.id) offset = Number(event.id);
          if (event.event === "output") onText(JSON.parse(event.data));
          if (event.event === "end") {
            onEnd(JSON.parse(event.data));
            return;
          }
        }
      }
    } catch (err) {
      if (signal.aborted) return;
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

function parseEvent(block) {
  const event = {};
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const at = line.indexOf(":");
    const key = at < 0 ? line : line.slice(0, at);
    const value = at < 0 ? "" : line.slice(at + 1).replace(/^ /, "");
    event[key] = key === "data" && event.data !== undefined ? `${event.data}\n${value}` : value;
  }
  return event;
}
