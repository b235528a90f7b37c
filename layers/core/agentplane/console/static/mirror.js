// The mirror pages: the person's reports (and starting one), one report (its status while
// it runs, its findings with links to the messages and actions they cite, the suggested
// prompt as a line diff against the agent's current one, Adopt), and one conversation
// with a cited message highlighted. Everything from the API is rendered as text.
import { ProblemResponse, api, el, getJson, link, me, postJson, say, short, visible, when } from "./lib.js";

const POLL_MS = 2500;
const LIVE = new Set(["queued", "running"]);
const PAGE = 200;
// How many pages a page follows on its own before it offers "more".
const AUTO_PAGES = 5;
// How many requests resolving a report's evidence may make (conversations, messages, actions).
const EVIDENCE_BUDGET = 120;

async function problemOf(resp) {
  const problem = await resp.json().catch(() => ({}));
  return problem.detail || resp.statusText || "HTTP " + resp.status;
}

// Every item of a paginated list, following next_cursor up to `pages` pages; the cursor
// left (null at the end) so a page can offer the rest.
async function collect(path, pages = AUTO_PAGES, cursor = null) {
  const items = [];
  const sep = path.includes("?") ? "&" : "?";
  for (let i = 0; i < pages; i++) {
    const page = await getJson(path + sep + "limit=" + PAGE + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
    items.push(...page.items);
    cursor = page.next_cursor;
    if (!cursor) break;
  }
  return { items, cursor };
}

function statusBadge(status, id) {
  return el("span", { id, class: "status status-" + status }, status);
}

// --- the list ------------------------------------------------------------------------------

async function connectionsById() {
  const { items } = await collect("/connections", 2).catch(() => ({ items: [] }));
  return new Map(items.map((c) => [c.id, c]));
}

function reportRow(report, connections) {
  const connection = connections.get(report.agent_connection_id);
  return el("tr", { "data-report-id": report.id },
    el("td", {}, link("#/mirror-reports/" + report.id, report.title || "report " + short(report.id))),
    el("td", {}, connection ? connection.name : short(report.agent_connection_id) || "(gone)"),
    el("td", {}, report.agent_id ? link("#/agents/" + report.agent_id, short(report.agent_id)) : "not yet"),
    el("td", {}, statusBadge(report.status)),
    el("td", {}, when(report.created_at)));
}

function startForm(connections) {
  const choose = el("select", { name: "connection", "aria-label": "connection", required: "" },
    ...[...connections.values()].map((c) => el("option", { value: c.id }, c.name + " (" + c.provider + ")")));
  const analyzer = el("select", { name: "analyzer", "aria-label": "analyzer" },
    el("option", { value: "auto" }, "auto"), el("option", { value: "heuristic" }, "heuristic"),
    el("option", { value: "llm" }, "llm"));
  const start = el("button", { type: "submit" }, "Start a report");
  const outcome = el("span", { class: "outcome", role: "alert" });
  const form = el("form", { id: "start-report", class: "decision" },
    el("label", {}, "Connection ", choose), el("label", {}, "Analyzer ", analyzer), start, outcome);
  if (!connections.size) {
    start.disabled = true;
    outcome.textContent = "You have no connection to analyze.";
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    start.disabled = true;
    outcome.replaceChildren();
    const resp = await postJson("/mirror-reports", { agent_connection_id: choose.value, analyzer: analyzer.value });
    start.disabled = false;
    if (resp.status === 202) {
      window.location.hash = "#/mirror-reports/" + (await resp.json()).id;
      return;
    }
    const problem = await resp.json().catch(() => ({}));
    outcome.append(problem.detail || resp.statusText);
    if (problem.report_id) outcome.append(" ", link("#/mirror-reports/" + problem.report_id, "open it"));
  });
  return form;
}

export async function renderList(root) {
  const connections = await connectionsById();
  const body = el("tbody", {});
  const more = el("button", { type: "button", id: "more-reports", hidden: "" }, "More");
  const empty = el("p", { id: "no-reports", hidden: "" }, "No reports yet.");
  root.replaceChildren(el("section", { id: "mirror-reports" },
    el("h2", {}, "Mirror reports"),
    el("p", { class: "hint" }, "A report reads one of your connections' conversations and the actions of their agent, and suggests a better system prompt. Newest first."),
    startForm(connections),
    el("table", { id: "reports" },
      el("thead", {}, el("tr", {}, ...["report", "connection", "agent", "status", "created"].map((h) => el("th", {}, h)))),
      body),
    empty, more));
  let reports = [];
  let cursor = null;
  async function load() {
    more.disabled = true;
    const page = await collect("/mirror-reports", AUTO_PAGES, cursor);
    reports = reports.concat(page.items);
    cursor = page.cursor;
    // The API lists oldest first; a person wants the latest on top.
    body.replaceChildren(...reports.slice().reverse().map((r) => reportRow(r, connections)));
    empty.hidden = reports.length > 0;
    more.hidden = !cursor;
    more.disabled = false;
  }
  more.addEventListener("click", () => load().catch((err) => say(err.message)));
  await load();
  return null;
}

// --- one report ----------------------------------------------------------------------------

// The line diff of two texts: [op, line] with op " " (both), "-" (only in a), "+" (only in
// b), by the longest common subsequence of lines after the common head and tail. A middle
// too large for the table is shown as all removed, then all added.
export function lineDiff(a, b, maxCells = 4_000_000) {
  const x = a === "" ? [] : a.replace(/\n$/, "").split("\n");
  const y = b === "" ? [] : b.replace(/\n$/, "").split("\n");
  let head = 0;
  while (head < x.length && head < y.length && x[head] === y[head]) head++;
  let tail = 0;
  while (tail < x.length - head && tail < y.length - head &&
    x[x.length - 1 - tail] === y[y.length - 1 - tail]) tail++;
  const out = x.slice(0, head).map((line) => [" ", line]);
  const xs = x.slice(head, x.length - tail), ys = y.slice(head, y.length - tail);
  const n = xs.length, m = ys.length;
  if (n * m > maxCells) {
    out.push(...xs.map((line) => ["-", line]), ...ys.map((line) => ["+", line]));
  } else {
    // lcs[i][j]: the LCS length of xs[i:] and ys[j:], in one flat array.
    const w = m + 1;
    const lcs = new Uint32Array((n + 1) * w);
    for (let i = n - 1; i >= 0; i--) {
      for (let j = m - 1; j >= 0; j--) {
        lcs[i * w + j] = xs[i] === ys[j] ? lcs[(i + 1) * w + j + 1] + 1
          : Math.max(lcs[(i + 1) * w + j], lcs[i * w + j + 1]);
      }
    }
    let i = 0, j = 0;
    while (i < n && j < m) {
      if (xs[i] === ys[j]) { out.push([" ", xs[i]]); i++; j++; }
      else if (lcs[(i + 1) * w + j] >= lcs[i * w + j + 1]) out.push(["-", xs[i++]]);
      else out.push(["+", ys[j++]]);
    }
    while (i < n) out.push(["-", xs[i++]]);
    while (j < m) out.push(["+", ys[j++]]);
  }
  out.push(...x.slice(x.length - tail).map((line) => [" ", line]));
  return out;
}

function diffView(current, suggested) {
  const lines = lineDiff(current, suggested);
  const changed = lines.some(([op]) => op !== " ");
  const box = el("div", { id: "prompt-diff", class: "diff" + (changed ? "" : " same") });
  for (const [op, text] of lines) {
    const line = el("div", { class: op === "+" ? "line add" : op === "-" ? "line del" : "line" }, op + " ");
    line.appendChild(visible(text));
    box.appendChild(line);
  }
  return { box, changed };
}

// Where each evidence id is: a message (in which conversation) or an action. A finding
// cites bare ids, so the page looks for them through the API as the person sees it: the
// messages of the connection's conversations active in the report's period (a report is
// its owner's, and so are the conversations it read), then the agent's actions. Ids not
// found within the budget stay unresolved.
async function locateEvidence(report, ids) {
  const where = new Map();
  const wanted = new Set(ids);
  let budget = EVIDENCE_BUDGET;
  async function page(path) {
    budget--;
    return getJson(path);
  }
  if (report.agent_connection_id && wanted.size) {
    const conversations = [];
    let cursor = null;
    do {
      const p = await page("/conversations?agent_connection_id=" + report.agent_connection_id +
        "&limit=" + PAGE + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
      conversations.push(...p.items);
      cursor = p.next_cursor;
    } while (cursor && budget > 0);
    // Only conversations that had messages in the report's period can hold its evidence.
    const since = report.since ? Date.parse(report.since) : -Infinity;
    const until = report.until ? Date.parse(report.until) : Infinity;
    const candidates = conversations
      .filter((c) => c.last_message_at && Date.parse(c.last_message_at) > since && Date.parse(c.created_at) <= until)
      .sort((a, b) => Date.parse(b.last_message_at) - Date.parse(a.last_message_at));
    for (const conversation of candidates) {
      let after = null;
      do {
        if (budget <= 0 || !wanted.size) break;
        const p = await page("/conversations/" + conversation.id + "/messages?limit=" + PAGE +
          (after ? "&cursor=" + encodeURIComponent(after) : ""));
        for (const message of p.items) {
          if (wanted.delete(message.id)) where.set(message.id, { kind: "message", conversation_id: message.conversation_id });
        }
        after = p.next_cursor;
      } while (after);
      if (budget <= 0 || !wanted.size) break;
    }
  }
  // What is left may be actions of the agent.
  const rest = [...wanted].slice(0, Math.max(0, budget));
  for (let k = 0; k < rest.length; k += 10) {
    await Promise.all(rest.slice(k, k + 10).map(async (id) => {
      const resp = await api("/actions/" + id);
      if (resp.ok) where.set(id, { kind: "action", tool: ((await resp.json()).payload || {}).tool });
    }));
  }
  return where;
}

function evidenceItem(id, where) {
  const at = where ? where.get(id) : null;
  if (at && at.kind === "message") {
    return link("#/conversations/" + at.conversation_id + "?message=" + id, "message " + short(id));
  }
  if (at && at.kind === "action") {
    return link("#/actions/" + id, "action " + short(id) + (at.tool ? " (" + at.tool + ")" : ""));
  }
  return el("span", { class: "hint", title: id }, short(id) + (where ? " (not found)" : " …"));
}

function evidenceLinks(ids, where) {
  return el("ul", { class: "evidence" },
    ...ids.map((id) => el("li", { "data-evidence-id": id }, evidenceItem(id, where))));
}

// The evidence links of a page already shown, once the evidence is located.
function fillEvidence(root, where) {
  for (const item of root.querySelectorAll("li[data-evidence-id]")) {
    item.replaceChildren(evidenceItem(item.getAttribute("data-evidence-id"), where));
  }
  const section = root.querySelector("#mirror-report");
  if (section) section.setAttribute("data-evidence", "located");
}

function findingsView(id, title, findings, where) {
  const list = el("ul", { id, class: "findings" });
  for (const f of findings) {
    list.appendChild(el("li", { class: "finding severity-" + f.severity },
      el("h4", {}, f.title, " ", el("span", { class: "severity" }, f.severity),
        f.frequency ? el("span", { class: "hint" }, " ×" + f.frequency) : null),
      f.detail ? el("p", {}, f.detail) : null,
      f.evidence && f.evidence.length ? evidenceLinks(f.evidence, where) : null));
  }
  if (!findings.length) list.appendChild(el("li", { class: "hint" }, "none"));
  return [el("h3", {}, title), list];
}

function row(label, ...value) {
  return el("div", { class: "row" }, el("dt", {}, label), el("dd", {}, ...value));
}

function period(report) {
  const from = report.since ? when(report.since) : "the beginning";
  return from + " to " + (report.until ? when(report.until) : "now");
}

function allEvidence(report) {
  const ids = new Set();
  for (const f of [...report.strengths, ...report.weaknesses, ...report.recommendations]) {
    for (const id of f.evidence || []) ids.add(id);
  }
  for (const c of report.prompt_changes || []) for (const id of c.evidence || []) ids.add(id);
  return [...ids];
}

async function promptSection(report, agent, state) {
  const out = [el("h3", {}, "Suggested prompt")];
  if (!report.suggested_prompt) {
    out.push(el("p", { id: "no-prompt", class: "hint" }, report.status === "succeeded"
      ? "The report suggests no change to the prompt." : "Not yet."));
    return out;
  }
  for (const c of report.prompt_changes || []) {
    out.push(el("div", { class: "change" }, el("code", {}, c.change), " — ", c.rationale,
      c.evidence && c.evidence.length ? evidenceLinks(c.evidence, state.where) : null));
  }
  let current = null;
  if (report.agent_id) {
    try {
      current = (await getJson("/agents/" + report.agent_id + "/config")).system_prompt || "";
    } catch (err) {
      out.push(el("p", { class: "problem" }, "The agent's current prompt did not load: " + err.message));
    }
  }
  if (current === null) {
    const pre = el("pre", { id: "suggested-prompt" });
    pre.appendChild(visible(report.suggested_prompt));
    out.push(pre);
  } else {
    const { box, changed } = diffView(current, report.suggested_prompt);
    out.push(el("p", { class: "hint" }, "Against the agent's current system prompt: ",
      el("span", { class: "del" }, "- removed"), " ", el("span", { class: "add" }, "+ added"), "."));
    out.push(box);
    if (!changed) {
      out.push(el("p", { id: "prompt-same", class: "verified" }, "The agent's prompt is the suggested one: nothing to change."));
    }
  }
  const adopt = el("button", { type: "button", id: "adopt" }, "Adopt");
  const outcome = el("span", { id: "adopt-outcome", class: "outcome", role: "status" });
  const viewer = agent && me.roles[agent.organization_id] === "viewer";
  if (report.adopted_at) {
    adopt.disabled = true;
    outcome.textContent = "Adopted as prompt version " + report.adopted_prompt_version + " at " + when(report.adopted_at) + ".";
  } else if (viewer) {
    adopt.disabled = true;
    adopt.title = "viewers cannot change an agent's prompt";
    outcome.textContent = "You are a viewer of this agent's organization: you cannot adopt.";
  } else if (!report.agent_id) {
    adopt.disabled = true;
  }
  if (state.outcome) outcome.textContent = state.outcome;
  adopt.addEventListener("click", async () => {
    adopt.disabled = true;
    outcome.textContent = "adopting…";
    const resp = await postJson("/mirror-reports/" + report.id + "/adopt", {});
    if (resp.ok) {
      const adopted = await resp.json();
      state.outcome = "Adopted: the agent's system prompt is now version " + adopted.adopted_prompt_version + ".";
      say(state.outcome);
      await state.show(adopted);
    } else {
      outcome.textContent = "Not adopted: " + (await problemOf(resp));
      adopt.disabled = resp.status === 403 || resp.status === 409;
    }
  });
  out.push(el("div", { class: "decision adopt" }, adopt, outcome));
  return out;
}

async function reportView(root, report, agent, connection, state) {
  const sections = [
    el("h2", {}, report.title || "Mirror report " + short(report.id), " ", statusBadge(report.status, "report-status")),
    el("dl", {},
      row("connection", connection ? connection.name : short(report.agent_connection_id) || "(gone)"),
      row("agent", report.agent_id ? link("#/agents/" + report.agent_id, agent ? agent.name : report.agent_id) : "not known yet"),
      row("analyzer", (report.analyzer || "not chosen yet") + " (asked for " + report.requested_analyzer + ")"),
      row("period", period(report)),
      row("analyzed", report.message_count + " messages, " + report.action_count + " actions"),
      row("created", when(report.created_at)),
      report.started_at ? row("started", when(report.started_at)) : null,
      report.finished_at ? row("finished", when(report.finished_at)) : null,
      LIVE.has(report.status) ? row("progress", (report.progress && report.progress.phase) || report.status) : null),
  ];
  if (report.error) sections.push(el("p", { id: "report-error", class: "problem" }, report.error));
  if (LIVE.has(report.status)) {
    sections.push(el("p", { class: "hint", id: "report-live" }, "The report is " + report.status + "; this page follows it."));
  }
  if (report.status === "succeeded") {
    sections.push(
      ...findingsView("strengths", "Strengths", report.strengths, state.where),
      ...findingsView("weaknesses", "Weaknesses", report.weaknesses, state.where),
      ...findingsView("recommendations", "Recommendations", report.recommendations, state.where),
      ...(await promptSection(report, agent, state)));
    if (report.notes && report.notes.length) {
      sections.push(el("h3", {}, "Notes"), el("ul", { id: "notes" }, ...report.notes.map((n) => el("li", {}, String(n)))));
    }
    if (report.dropped_evidence) {
      sections.push(el("p", { class: "hint" }, report.dropped_evidence + " cited ids were not in the analyzed set and were dropped."));
    }
  }
  if (state.stopped) return;
  root.replaceChildren(el("section", {
    id: "mirror-report", "data-report-id": report.id, "data-evidence": state.where ? "located" : null,
  }, ...sections));
}

export async function renderReport(root, [id]) {
  let report;
  try {
    report = await getJson("/mirror-reports/" + id);
  } catch (err) {
    if (err instanceof ProblemResponse && err.status === 404) {
      root.replaceChildren(el("p", { class: "problem" }, "No report " + id + " of yours: reports are their owner's alone."));
      return null;
    }
    throw err;
  }
  const connections = await connectionsById();
  let timer = null;
  const agents = new Map();
  async function agentOf(r) {
    if (!r.agent_id) return null;
    if (!agents.has(r.agent_id)) agents.set(r.agent_id, await getJson("/agents/" + r.agent_id).catch(() => null));
    return agents.get(r.agent_id);
  }
  const state = { where: null, locating: null, outcome: null, show: null, stopped: false };
  state.show = async (r) => {
    report = r;
    if (state.stopped) return;
    const agent = await agentOf(r);
    await reportView(root, r, agent, connections.get(r.agent_connection_id), state);
    if (r.status === "succeeded" && !state.locating) {
      state.locating = locateEvidence(r, allEvidence(r)).catch((err) => {
        say("The evidence did not resolve: " + err.message);
        return new Map();
      });
      state.where = await state.locating;
      if (!state.stopped) fillEvidence(root, state.where);
    }
  };
  await state.show(report);
  async function poll() {
    if (state.stopped) return;
    try {
      const now = await getJson("/mirror-reports/" + id);
      if (now.updated_at !== report.updated_at || now.status !== report.status) await state.show(now);
    } catch (err) {
      say(err.message);
    }
    if (!state.stopped && LIVE.has(report.status)) timer = setTimeout(poll, POLL_MS);
  }
  if (LIVE.has(report.status)) timer = setTimeout(poll, POLL_MS);
  return () => { state.stopped = true; clearTimeout(timer); };
}

// --- one conversation ----------------------------------------------------------------------

function messageItem(message, cited) {
  const content = el("pre", { class: "content" });
  content.appendChild(visible(message.content));
  return el("li", { class: "message role-" + message.role + (message.id === cited ? " cited" : ""), "data-message-id": message.id },
    el("div", { class: "meta" }, el("strong", { class: "role" }, message.role), " · ", when(message.created_at),
      message.prompt_version ? " · prompt version " + message.prompt_version : ""),
    content);
}

export async function renderConversation(root, [id], query) {
  const cited = query && query.get("message");
  let conversation;
  try {
    conversation = await getJson("/conversations/" + id);
  } catch (err) {
    if (err instanceof ProblemResponse && err.status === 404) {
      root.replaceChildren(el("section", { id: "conversation" },
        el("h2", {}, "Conversation " + short(id)),
        el("p", { id: "not-yours", class: "problem" },
          "This conversation is not yours to read: conversations (and their messages) are visible only to the person who had them, and a mirror report only to its owner. Or it does not exist.")));
      return null;
    }
    throw err;
  }
  const list = el("ol", { id: "messages" });
  const more = el("button", { type: "button", id: "more-messages", hidden: "" }, "More messages");
  const missing = el("p", { id: "cited-missing", class: "hint", hidden: "" });
  root.replaceChildren(el("section", { id: "conversation", "data-conversation-id": id },
    el("h2", {}, conversation.title || "Conversation " + short(id)),
    el("p", { class: "meta" },
      conversation.agent_id ? el("span", {}, "agent ", link("#/agents/" + conversation.agent_id, short(conversation.agent_id)), " · ") : null,
      "started " + when(conversation.created_at),
      conversation.last_message_at ? " · last message " + when(conversation.last_message_at) : ""),
    cited ? el("p", { class: "hint" }, "The cited message is highlighted.") : null,
    list, more, missing));
  let cursor = null, found = false, stopped = false;
  async function load(pages) {
    more.disabled = true;
    const page = await collect("/conversations/" + id + "/messages", pages, cursor);
    if (stopped) return;
    list.append(...page.items.map((m) => messageItem(m, cited)));
    cursor = page.cursor;
    more.hidden = !cursor;
    more.disabled = false;
    if (cited && !found) found = page.items.some((m) => m.id === cited);
  }
  more.addEventListener("click", () => load(AUTO_PAGES).catch((err) => say(err.message)));
  await load(AUTO_PAGES);
  // Keep reading until the cited message is on the page (or the conversation ends).
  while (cited && !found && cursor && !stopped) await load(AUTO_PAGES);
  if (!list.children.length) list.appendChild(el("li", { class: "hint" }, "No messages."));
  if (cited) {
    const node = list.querySelector("li.cited");
    if (node) node.scrollIntoView({ block: "center" });
    else {
      missing.hidden = false;
      missing.textContent = "The cited message " + cited + " is not in this conversation (any more).";
    }
  }
  return () => { stopped = true; };
}
