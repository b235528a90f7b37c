// Sign-in. Locally the console link carries a dev token (taken by app.js). In AWS the
// page signs in through the configured Supabase project (GoTrue's password grant) and
// keeps the session's JWT, refreshed before it expires, in sessionStorage only.
import { TOKEN_KEY, token } from "./lib.js";

const REFRESH_KEY = "agentplane.refresh_token";
const EXPIRES_KEY = "agentplane.expires_at";
let config = null;
let refreshTimer = null;

async function settings() {
  if (!config) {
    const resp = await fetch("/console/config.json");
    config = resp.ok ? await resp.json() : {};
  }
  return config;
}

async function gotrue(path, body, bearer) {
  const { supabase_url: url, supabase_anon_key: anon } = await settings();
  const headers = { apikey: anon, "Content-Type": "application/json" };
  if (bearer) headers.Authorization = "Bearer " + bearer;
  return fetch(url.replace(/\/$/, "") + "/auth/v1/" + path, {
    method: "POST", headers, body: JSON.stringify(body || {}),
  });
}

function keep(session) {
  sessionStorage.setItem(TOKEN_KEY, session.access_token);
  sessionStorage.setItem(REFRESH_KEY, session.refresh_token);
  const expiresAt = Date.now() + session.expires_in * 1000;
  sessionStorage.setItem(EXPIRES_KEY, String(expiresAt));
  schedule(expiresAt);
}

function schedule(expiresAt) {
  clearTimeout(refreshTimer);
  // A minute early (or at once when it is that close already).
  refreshTimer = setTimeout(refresh, Math.max(expiresAt - Date.now() - 60000, 0));
}

async function refresh() {
  const refreshToken = sessionStorage.getItem(REFRESH_KEY);
  if (!refreshToken) return;
  const resp = await gotrue("token?grant_type=refresh_token", { refresh_token: refreshToken });
  if (resp.ok) keep(await resp.json());
  else window.dispatchEvent(new Event("agentplane:signed-out"));
}

// On load: a Supabase session kept in this tab is refreshed when due.
export async function restore() {
  const expiresAt = Number(sessionStorage.getItem(EXPIRES_KEY) || 0);
  if (!sessionStorage.getItem(REFRESH_KEY)) return;
  if (expiresAt - Date.now() < 60000) await refresh();
  else schedule(expiresAt);
}

export function signOut() {
  clearTimeout(refreshTimer);
  const access = token();
  if (sessionStorage.getItem(REFRESH_KEY) && access) {
    // Best effort: the provider ends the session; this tab forgets it either way.
    gotrue("logout", {}, access).catch(() => {});
  }
  for (const key of [TOKEN_KEY, REFRESH_KEY, EXPIRES_KEY]) sessionStorage.removeItem(key);
}

export async function showForm(onSignedIn) {
  const section = document.getElementById("signed-out");
  section.hidden = false;
  const form = document.getElementById("sign-in");
  const { supabase_url: url } = await settings();
  form.hidden = !url;
  if (!url || form.dataset.ready) return;
  form.dataset.ready = "1";
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const problem = document.getElementById("sign-in-problem");
    problem.textContent = "";
    const email = form.querySelector("[name=email]").value;
    const password = form.querySelector("[name=password]").value;
    const resp = await gotrue("token?grant_type=password", { email, password }).catch(() => null);
    if (!resp || !resp.ok) {
      const body = resp ? await resp.json().catch(() => ({})) : {};
      problem.textContent = body.error_description || body.msg || body.message ||
        (resp ? "sign-in failed (" + resp.status + ")" : "the identity provider did not answer");
      return;
    }
    keep(await resp.json());
    form.querySelector("[name=password]").value = "";
    await onSignedIn();
  });
}
