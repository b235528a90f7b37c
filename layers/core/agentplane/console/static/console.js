// The agentplane approval console. Vanilla JS, no build step; every value from the API
// is rendered as text (textContent), never as HTML. The token lives in sessionStorage
// only. The page enforces nothing: every decision is the API's.
"use strict";

const TOKEN_KEY = "agentplane.token";
const POLL_MS = 3000;
let etag = null;
let items = [];
let selected = 0;
// organization id -> the caller's role there (from /me): a viewer's buttons are off.
let roles = {};

function token() {
  const hash = new URLSearchParams(window.location.hash.slice(1));
  const fromLink = hash.get("token");
  if (fromLink) {
    sessionStorage.setItem(TOKEN_KEY, fromLink);
    // The token never stays in the address bar (or the history).
    history.replaceState(null, "", window.location.pathname + window.location.search);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: "Bearer " + token() }, options.headers || {});
  return fetch(path, Object.assign({}, options, { headers }));
}

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// Canonical JSON as the server hashes it: keys sorted, no whitespace, non-ASCII as is.
function canonical(value) {
  if (Array.isArray(value)) return "[" + value.map(canonical).join(",") + "]";
  if (value && typeof value === "object") {
    return "{" + Object.keys(value).sort()
      .map((k) => JSON.stringify(k) + ":" + canonical(value[k])).join(",") + "}";
  }
  return JSON.stringify(value);
}

async function sha256Hex(text) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest)).map((b) => b.toString(16).padStart(2, "0")).join("");
}

// Invisible, bidirectional and non-ASCII characters are shown as their code points, so
// what a person approves is what will run.
const SUSPECT = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u00ad\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]|[^\u0000-\u007f]/u;
function visible(text) {
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

function countdown(expiresAt) {
  const left = Math.round((new Date(expiresAt).getTime() - Date.now()) / 1000);
  if (left <= 0) return "expired";
  const m = Math.floor(left / 60), s = left % 60;
  return m + "m " + String(s).padStart(2, "0") + "s left";
}

function say(text) {
  document.getElementById("status").textContent = text;
}

async function decide(action, decision, card) {
  const resp = await api("/actions/" + action.id + "/" + decision, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({}),
  });
  const outcome = card.querySelector(".outcome");
  if (resp.ok) {
    const done = await resp.json();
    outcome.textContent = done.status;
    say("Action " + action.id + " is " + done.status + ".");
  } else {
    const problem = await resp.json().catch(() => ({}));
    const current = problem.current_status ? " (it is " + problem.current_status + ")" : "";
    outcome.textContent = (problem.detail || resp.statusText) + current;
    say(outcome.textContent);
  }
  for (const button of card.querySelectorAll("button")) button.disabled = true;
  etag = null;
  setTimeout(refresh, 300);
}

async function card(action, index) {
  const item = el("li", { class: "item", "data-action-id": action.id });
  const source = action.workflow_run_id
    ? "workflow run " + action.workflow_run_id + " (node " + action.workflow_node_id + ")"
    : action.message_id ? "a turn (message " + action.message_id + ")" : "proposed by " + (action.proposed_by || "a server job");
  item.appendChild(el("div", { class: "meta" }, "agent " + action.agent_id + " · " + source));
  item.appendChild(el("h3", {}, action.kind === "approval" ? "Approval gate" : action.payload.tool));
  const text = canonical(action.payload);
  const pre = el("pre", { class: "payload" });
  pre.appendChild(visible(text));
  item.appendChild(pre);
  const hash = await sha256Hex(text);
  const hashLine = el("div", { class: "hash" }, "sha256 " + action.payload_sha256);
  if (hash !== action.payload_sha256) {
    hashLine.appendChild(el("strong", { class: "expired" }, " (does not match the payload shown)"));
  }
  item.appendChild(hashLine);
  item.appendChild(el("div", { class: "ttl", "data-expires": action.expires_at }, countdown(action.expires_at)));
  const buttons = el("div", { class: "decision" });
  const reject = el("button", { type: "button", class: "reject" }, "Reject");
  const approve = el("button", { type: "button", class: "approve" }, "Approve");
  reject.addEventListener("click", () => decide(action, "reject", item));
  approve.addEventListener("click", () => decide(action, "approve", item));
  if (roles[action.organization_id] === "viewer") {
    // The API refuses a viewer's decision (403); the page says so before anyone tries.
    for (const button of [reject, approve]) {
      button.disabled = true;
      button.title = "viewers cannot decide";
    }
  }
  buttons.append(reject, approve, el("span", { class: "outcome" }));
  item.appendChild(buttons);
  if (index === selected) item.classList.add("selected");
  return item;
}

async function render(page) {
  items = page.items;
  const list = document.getElementById("items");
  const cards = [];
  for (let i = 0; i < items.length; i++) cards.push(await card(items[i], i));
  list.replaceChildren(...cards);
  document.getElementById("count").textContent = "(" + items.length + ")";
  document.getElementById("empty").hidden = items.length > 0;
  select(Math.min(selected, Math.max(items.length - 1, 0)));
}

function select(index) {
  selected = index;
  const cards = document.querySelectorAll("#items .item");
  cards.forEach((c, i) => c.classList.toggle("selected", i === index));
  const reject = cards[index] && cards[index].querySelector("button.reject");
  // The default focus is on Reject: Enter never approves by accident.
  if (reject && !reject.disabled) reject.focus();
}

async function refresh() {
  const headers = etag ? { "If-None-Match": etag } : {};
  const resp = await api("/actions?status=pending&limit=50", { headers });
  if (resp.status === 304) return;
  if (resp.status === 401) return signedOut();
  if (!resp.ok) return say("The inbox did not load: " + resp.status);
  etag = resp.headers.get("ETag");
  await render(await resp.json());
}

function tick() {
  for (const ttl of document.querySelectorAll(".ttl")) {
    ttl.textContent = countdown(ttl.getAttribute("data-expires"));
    ttl.classList.toggle("expired", ttl.textContent === "expired");
  }
}

function signedOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  document.getElementById("inbox").hidden = true;
  document.getElementById("sign-out").hidden = true;
  document.getElementById("signed-out").hidden = false;
  document.getElementById("who").textContent = "";
}

async function start() {
  document.getElementById("sign-out").addEventListener("click", signedOut);
  document.addEventListener("keydown", (event) => {
    const cards = document.querySelectorAll("#items .item");
    if (!cards.length || event.target.tagName === "INPUT") return;
    const current = cards[selected];
    if (event.key === "j") select((selected + 1) % cards.length);
    else if (event.key === "a") current.querySelector("button.approve").click();
    else if (event.key === "r") current.querySelector("button.reject").click();
  });
  if (!token()) return signedOut();
  const me = await api("/me");
  if (!me.ok) return signedOut();
  const who = await me.json();
  document.getElementById("who").textContent = who.email || who.user_id || "";
  for (const membership of who.organizations || []) {
    roles[membership.organization_id] = membership.role;
  }
  document.getElementById("sign-out").hidden = false;
  document.getElementById("inbox").hidden = false;
  await refresh();
  setInterval(refresh, POLL_MS);
  setInterval(tick, 1000);
}

document.addEventListener("DOMContentLoaded", start);
