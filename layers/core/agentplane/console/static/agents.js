// The agents pages: every agent the person can see, and one agent's runner sessions
// (refreshed, so presence shows as it changes), its config and its recent actions.
// Every value from the API is text (el() and textContent), never HTML.
import { el, getJson, link, poller, say, short, when } from "./lib.js";

// Every second: a runner's socket opening or closing changes its presence at once on the
// server (DESIGN.md §4.2), and the page should show it within a second too.
const SESSIONS_MS = 1000;
const ACTIONS_MS = 5000;
const PAGE_LIMIT = 50;

function status(value, extra = "") {
  return el("span", { class: ("status status-" + value + " " + extra).trim() }, value);
}

function row(label, id, ...value) {
  return el("div", { class: "row" }, el("dt", {}, label), el("dd", { id }, ...value));
}

// The list, a page at a time: "More" follows next_cursor.
export async function renderList(root) {
  const list = el("ul", { id: "agent-list", class: "plain-list" });
  const more = el("button", { type: "button", id: "agents-more", hidden: "" }, "More");
  const empty = el("p", { id: "agents-empty", hidden: "" }, "No agents you can see.");
  root.replaceChildren(el("section", { id: "agents" }, el("h2", {}, "Agents"), list, empty, more));
  let cursor = null;
  async function load() {
    more.disabled = true;
    const query = "?limit=" + PAGE_LIMIT + (cursor ? "&cursor=" + encodeURIComponent(cursor) : "");
    const page = await getJson("/agents" + query);
    for (const agent of page.items) {
      list.appendChild(el("li", { "data-agent-id": agent.id },
        link("#/agents/" + agent.id, agent.name || short(agent.id)), " ",
        status(agent.status), " ",
        el("span", { class: "hint" }, short(agent.id) + (agent.description ? " · " + agent.description : ""))));
    }
    cursor = page.next_cursor;
    more.hidden = !cursor;
    more.disabled = false;
    empty.hidden = list.children.length > 0;
  }
  more.addEventListener("click", () => load().catch((err) => say("Agents did not load: " + err.message)));
  await load();
}

function sessionItem(s) {
  const m = s.metadata || {};
  const text = (value) => (value === undefined || value === null ? "" : String(value));
  return el("li", { class: "session", "data-session-id": s.id, "data-status": s.status },
    status(s.status, "session-status"), " ",
    el("code", { class: "session-id" }, short(s.id)), " ",
    el("span", { class: "session-hostname" }, text(m.hostname)), " · ",
    el("span", { class: "session-os" }, text(m.os || m.platform)), " · ",
    el("span", { class: "session-version" }, text(m.runner_version || m.version)),
    el("div", { class: "hint" },
      "last heartbeat ", el("span", { class: "session-heartbeat" }, when(s.last_heartbeat)),
      s.ended_at ? " · ended " + when(s.ended_at) : "",
      m.ip ? " · " + m.ip : "", m.pid ? " · pid " + m.pid : ""));
}

function configView(config) {
  const tools = el("ul", { id: "config-allowed-tools", class: "tools" });
  for (const tool of config.allowed_tools || []) tools.appendChild(el("li", {}, el("code", {}, tool)));
  if (!tools.children.length) tools.appendChild(el("li", { class: "hint" }, "none"));
  return el("dl", { id: "config" },
    row("Model", "config-model", config.model || "(the connection's default)"),
    row("Temperature", "config-temperature", String(config.temperature)),
    row("Allowed tools", "config-tools", tools),
    row("Connection", "config-connection", config.connection_id ? short(config.connection_id) : "none"),
    row("Updated", "config-updated", when(config.updated_at)),
    row("System prompt", "config-system-prompt-row", el("pre", { id: "config-system-prompt" }, config.system_prompt || "")));
}

function actionItem(action) {
  const what = action.kind === "approval" ? "Approval gate" : (action.payload && action.payload.tool) || "action";
  return el("li", { class: "agent-action", "data-action-id": action.id, "data-status": action.status },
    link("#/actions/" + action.id, what), " ", status(action.status, "action-status"), " ",
    el("span", { class: "hint" }, short(action.id) + " · " + when(action.created_at)));
}

export async function renderAgent(root, params) {
  const id = params[0];
  const agent = await getJson("/agents/" + id);
  const sessions = el("ul", { id: "sessions", class: "plain-list" });
  const sessionsNote = el("p", { id: "sessions-note", class: "hint" });
  const configBox = el("div", { id: "config-box" }, el("p", { class: "hint" }, "Loading…"));
  const actions = el("ul", { id: "agent-actions", class: "plain-list" });
  const actionsNote = el("p", { id: "agent-actions-note", class: "hint" });
  root.replaceChildren(el("section", { id: "agent", "data-agent-id": agent.id },
    el("h2", {}, agent.name || short(agent.id), " ", status(agent.status)),
    el("p", { class: "hint" }, agent.id + (agent.description ? " · " + agent.description : "")),
    el("h3", {}, "Runner sessions"), sessions, sessionsNote,
    el("h3", {}, "Config"), configBox,
    el("h3", {}, "Recent actions"), actions, actionsNote));

  getJson("/agents/" + id + "/config")
    .then((config) => configBox.replaceChildren(configView(config)))
    .catch((err) => configBox.replaceChildren(el("p", { id: "config-missing", class: "hint" }, err.message)));

  const watchSessions = poller("/agents/" + id + "/sessions?limit=200", SESSIONS_MS, (page) => {
    // Live sessions first, then the ended ones, newest heartbeat first within each.
    const rank = { busy: 0, online: 0, offline: 1 };
    const items = page.items.slice().sort((a, b) => (rank[a.status] - rank[b.status]) ||
      String(b.last_heartbeat).localeCompare(String(a.last_heartbeat)));
    sessions.replaceChildren(...items.map(sessionItem));
    const live = items.filter((s) => s.status !== "offline").length;
    sessionsNote.textContent = (items.length ? live + " of " + items.length + " online" : "No runner has connected.") +
      (page.next_cursor ? " (only the oldest 200 sessions are shown)" : "");
  }, (code) => say("The sessions did not load: " + code));

  const watchActions = poller("/actions?agent_id=" + id + "&order=newest&limit=20", ACTIONS_MS, (page) => {
    actions.replaceChildren(...page.items.map(actionItem));
    actionsNote.textContent = page.items.length ? "" : "No actions yet.";
  }, (code) => say("The actions did not load: " + code));

  return () => {
    watchSessions.stop();
    watchActions.stop();
  };
}
