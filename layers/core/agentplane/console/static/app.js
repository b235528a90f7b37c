// The agentplane approval console: a hash router over a few pages. Vanilla JS modules,
// no build step. The page enforces nothing: every decision is the API's.
import { TOKEN_KEY, api, el, me, say, token } from "./lib.js";
import * as signin from "./signin.js";
import * as inbox from "./inbox.js";
import * as action from "./action.js";
import * as agents from "./agents.js";
import * as workflows from "./workflows.js";
import * as mirror from "./mirror.js";

// path pattern -> page module; each page's render(root, params) may return a cleanup.
const ROUTES = [
  [/^\/?$/, inbox.render],
  [/^\/actions\/([0-9a-f-]{36})$/, action.render],
  [/^\/agents$/, agents.renderList],
  [/^\/agents\/([0-9a-f-]{36})$/, agents.renderAgent],
  [/^\/workflows$/, workflows.renderList],
  [/^\/workflows\/([0-9a-f-]{36})$/, workflows.renderWorkflow],
  [/^\/workflow-runs\/([0-9a-f-]{36})$/, workflows.renderRun],
  [/^\/mirror-reports$/, mirror.renderList],
  [/^\/mirror-reports\/([0-9a-f-]{36})$/, mirror.renderReport],
  [/^\/conversations\/([0-9a-f-]{36})$/, mirror.renderConversation],
];

let cleanup = null;

// A console link carries the token after "#token="; it moves to sessionStorage and out
// of the address bar (and the history) before anything else runs.
function takeTokenFromLink() {
  const hash = new URLSearchParams(window.location.hash.slice(1));
  const fromLink = hash.get("token");
  if (fromLink) {
    sessionStorage.setItem(TOKEN_KEY, fromLink);
    const page = (hash.get("page") || "").replace(/^\/+/, "");
    history.replaceState(null, "", window.location.pathname + window.location.search + "#/" + page);
  }
}

function route() {
  const raw = window.location.hash.replace(/^#/, "") || "/";
  const [path, query] = raw.split("?");
  for (const [pattern, render] of ROUTES) {
    const m = pattern.exec(path);
    if (m) return { render, params: m.slice(1), query: new URLSearchParams(query || "") };
  }
  return null;
}

async function show() {
  if (cleanup) cleanup();
  cleanup = null;
  say("");
  const root = document.getElementById("view");
  const found = route();
  for (const a of document.querySelectorAll("nav a")) {
    a.classList.toggle("current", window.location.hash.startsWith(a.getAttribute("href")) &&
      (a.getAttribute("href") !== "#/" || (found && found.render === inbox.render)));
  }
  if (!found) {
    root.replaceChildren(el("p", {}, "No such page."));
    return;
  }
  root.replaceChildren(el("p", { class: "hint" }, "Loading…"));
  try {
    cleanup = (await found.render(root, found.params, found.query)) || null;
  } catch (err) {
    root.replaceChildren(el("p", { class: "problem" }, err.message || String(err)));
  }
}

function signedOut() {
  if (cleanup) cleanup();
  cleanup = null;
  signin.signOut();
  document.getElementById("view").replaceChildren();
  document.querySelector("nav").hidden = true;
  document.getElementById("sign-out").hidden = true;
  document.getElementById("who").textContent = "";
  signin.showForm(start);
}

async function start() {
  document.getElementById("signed-out").hidden = true;
  const resp = await api("/me");
  if (!resp.ok) return signedOut();
  const who = await resp.json();
  me.user_id = who.user_id;
  me.email = who.email;
  me.roles = {};
  for (const membership of who.organizations || []) me.roles[membership.organization_id] = membership.role;
  document.getElementById("who").textContent = who.email || who.user_id || "";
  document.getElementById("sign-out").hidden = false;
  document.querySelector("nav").hidden = false;
  await show();
}

document.addEventListener("DOMContentLoaded", async () => {
  takeTokenFromLink();
  document.getElementById("sign-out").addEventListener("click", signedOut);
  window.addEventListener("agentplane:signed-out", signedOut);
  window.addEventListener("hashchange", () => {
    takeTokenFromLink();
    if (token()) show();
  });
  await signin.restore();
  if (!token()) return signedOut();
  await start();
});
