// Shared pieces of the console: the API client, text-only rendering, and the exact
// byte layouts the server hashes and signs, so the browser can check them itself.
// Every value from the API is rendered with textContent, never as HTML.

export const TOKEN_KEY = "agentplane.token";

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

// Every request goes to this origin with the person's bearer token; a 401 signs out.
export async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: "Bearer " + token() }, options.headers || {});
  const resp = await fetch(path, Object.assign({}, options, { headers }));
  if (resp.status === 401) window.dispatchEvent(new Event("agentplane:signed-out"));
  return resp;
}

export async function getJson(path) {
  const resp = await api(path);
  if (!resp.ok) throw new ProblemResponse(resp.status, await resp.json().catch(() => ({})));
  return resp.json();
}

export async function postJson(path, body) {
  return api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body || {}),
  });
}

export class ProblemResponse extends Error {
  constructor(status, problem) {
    super((problem && problem.detail) || "HTTP " + status);
    this.status = status;
    this.problem = problem;
  }
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === undefined || child === null) continue;
    node.append(typeof child === "string" || typeof child === "number" ? String(child) : child);
  }
  return node;
}

export function link(href, text) {
  return el("a", { href }, text);
}

export function short(id) {
  return id ? String(id).slice(0, 8) : "";
}

export function when(timestamp) {
  if (!timestamp) return "";
  return new Date(timestamp).toLocaleString();
}

export function say(text) {
  const status = document.getElementById("status");
  if (status) status.textContent = text;
}

// Canonical JSON as the server hashes payloads and signs approvals: keys sorted, no
// whitespace, non-ASCII as is (agentplane.actions.canonical).
export function canonical(value) {
  if (Array.isArray(value)) return "[" + value.map(canonical).join(",") + "]";
  if (value && typeof value === "object") {
    return "{" + Object.keys(value).sort()
      .map((k) => JSON.stringify(k) + ":" + canonical(value[k])).join(",") + "}";
  }
  return JSON.stringify(value);
}

// PostgreSQL's text of a jsonb value (what the audit chain hashes): object keys shorter
// first, then bytewise; ", " and ": " between members; its string escapes.
const utf8 = new TextEncoder();
function compareBytes(a, b) {
  const x = utf8.encode(a), y = utf8.encode(b);
  if (x.length !== y.length) return x.length - y.length;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return 0;
}
const NAMED_ESCAPES = { "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", '"': '\\"', "\\": "\\\\" };
function jsonbString(text) {
  let out = '"';
  for (const ch of text) {
    if (NAMED_ESCAPES[ch]) out += NAMED_ESCAPES[ch];
    else if (ch.codePointAt(0) < 0x20) out += "\\u" + ch.codePointAt(0).toString(16).padStart(4, "0");
    else out += ch;
  }
  return out + '"';
}
export function jsonbText(value) {
  if (value === null) return "null";
  if (Array.isArray(value)) return "[" + value.map(jsonbText).join(", ") + "]";
  if (typeof value === "object") {
    return "{" + Object.keys(value).sort(compareBytes)
      .map((k) => jsonbString(k) + ": " + jsonbText(value[k])).join(", ") + "}";
  }
  if (typeof value === "string") return jsonbString(value);
  return String(value);
}

// Microseconds since the epoch of an RFC 3339 timestamp, exactly (Date keeps only
// milliseconds), and the server's spelling of one inside signed messages.
export function micros(timestamp) {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?(Z|[+-]\d\d:\d\d)$/.exec(timestamp);
  if (!m) throw new Error("not an RFC 3339 timestamp: " + timestamp);
  const seconds = BigInt(Date.parse(m[1] + m[3])) / 1000n;
  return seconds * 1000000n + BigInt((m[2] || "").padEnd(6, "0"));
}
export function rfc3339Micros(timestamp) {
  const total = micros(timestamp);
  const seconds = total / 1000000n, fraction = total % 1000000n;
  const base = new Date(Number(seconds) * 1000).toISOString().slice(0, 19);
  return base + "." + String(fraction).padStart(6, "0") + "Z";
}

export async function sha256Hex(text) {
  const digest = await crypto.subtle.digest("SHA-256", utf8.encode(text));
  return Array.from(new Uint8Array(digest)).map((b) => b.toString(16).padStart(2, "0")).join("");
}

function b64urlBytes(text) {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

// The approval's Ed25519 signature checked against the server's published keys: the kid
// of the key that verifies it, or null. Throws when the browser has no Ed25519.
export async function verifyApproval(action, keys) {
  const message = canonical({
    action_id: action.id,
    agent_id: action.agent_id,
    approved_at: rfc3339Micros(action.decided_at),
    expires_at: rfc3339Micros(action.approval_expires_at),
    payload_sha256: action.payload_sha256,
    // The approval policy it was decided under and the risk are signed too.
    policy_id: action.policy_id === undefined ? null : action.policy_id,
    policy_version: action.policy_version === undefined ? null : action.policy_version,
    risk: action.risk,
  });
  for (const jwk of keys) {
    const key = await crypto.subtle.importKey(
      "jwk", { kty: jwk.kty, crv: jwk.crv, x: jwk.x }, { name: "Ed25519" }, false, ["verify"]);
    const ok = await crypto.subtle.verify(
      { name: "Ed25519" }, key, b64urlBytes(action.approval_signature), utf8.encode(message));
    if (ok) return jwk.kid;
  }
  return null;
}

// Invisible, bidirectional and non-ASCII characters are shown as their code points, so
// what a person approves is what will run.
const SUSPECT = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u00ad\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]|[^\u0000-\u007f]/u;
export function visible(text) {
  const out = document.createDocumentFragment();
  for (const ch of text) {
    if (SUSPECT.test(ch)) {
      const code = ch.codePointAt(0).toString(16).toUpperCase().padStart(4, "0");
      out.appendChild(el("span", { class: "invisible", title: "U+" + code }, "\\u{" + code + "}"));
    } else {
      out.appendChild(document.createTextNode(ch));
    }
  }
  return out;
}

export function countdown(expiresAt) {
  const left = Math.round((new Date(expiresAt).getTime() - Date.now()) / 1000);
  if (left <= 0) return "expired";
  const h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
  return (h ? h + "h " : "") + m + "m " + String(s).padStart(2, "0") + "s left";
}

// Most dangerous first when sorting by an action's risk (its approval policy's, or the
// tool catalog's when no policy matched: the server writes it at proposal).
export const RISK_ORDER = { critical: 0, high: 1, medium: 2, low: 3 };

// Everything a page needs to know about the person: their id and role per organization.
export const me = { user_id: null, email: null, roles: {} };

// Poll `path` every `ms` with If-None-Match; `onPage` runs only when it changed. One
// request at a time: `now()` during a request asks again as soon as it is answered.
export function poller(path, ms, onPage, onError) {
  let etag = null, timer = null, stopped = false, busy = false, again = false;
  async function once() {
    if (busy) { again = true; return; }
    busy = true;
    try {
      const resp = await api(path, { headers: etag ? { "If-None-Match": etag } : {} });
      if (resp.status !== 304 && !stopped) {
        if (!resp.ok) onError && onError(resp.status);
        else {
          etag = resp.headers.get("ETag");
          await onPage(await resp.json());
        }
      }
    } catch (err) {
      if (onError) onError(err.message || String(err));
    } finally {
      busy = false;
      clearTimeout(timer);
      if (!stopped) timer = setTimeout(once, again ? 0 : ms);
      again = false;
    }
  }
  once();
  return {
    stop() { stopped = true; clearTimeout(timer); },
    now() { etag = null; if (!stopped) once(); },
  };
}

// An agent's name (its id while unknown), asked once per page load.
const agentNames = new Map();
export async function agentName(id) {
  if (!agentNames.has(id)) {
    agentNames.set(id, getJson("/agents/" + id).then((a) => a.name, () => short(id)));
  }
  return agentNames.get(id);
}
