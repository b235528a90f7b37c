// One action: what it is, the decision and its signature (checked here against the
// server's published keys), the runner session that ran it, its output and result, and
// the audit timeline with its hash chain recomputed in the browser.
import {
  ProblemResponse, canonical, countdown, el, getJson, jsonbText, link, me, micros, say,
  agentName, sha256Hex, short, verifyApproval, visible, when,
} from "./lib.js";
import { decide, decider, source } from "./inbox.js";

const POLL_MS = 2000;
const LIVE = new Set(["pending", "approved", "claimed"]);
// How much of one output field is shown before it is cut (the rest is counted).
const OUTPUT_LIMIT = 65536;

function row(label, ...value) {
  return el("div", { class: "row" }, el("dt", {}, label), el("dd", {}, ...value));
}

// The audit chain, link by link: each event's prev_hash is the previous hash, and its
// hash is SHA-256 over the fields in the database's layout (private.action_event_hash).
export async function verifyChain(events) {
  const results = [];
  let previous = null;
  for (const e of events) {
    const layout = [
      e.prev_hash || "", e.action_id, e.from_status || "", e.to_status, e.actor_id || "",
      e.actor_role, String(micros(e.created_at)), jsonbText(e.detail),
    ].join("|");
    const recomputed = await sha256Hex(layout);
    let problem = null;
    if ((e.prev_hash || null) !== previous) problem = "prev_hash is not the previous event's hash";
    else if (recomputed !== e.hash) problem = "the hash does not match the event";
    results.push(problem);
    previous = e.hash;
  }
  return results;
}

function clip(text) {
  if (text.length <= OUTPUT_LIMIT) return [text, null];
  return [text.slice(0, OUTPUT_LIMIT), "… " + (text.length - OUTPUT_LIMIT) + " more characters not shown"];
}

// Text fields (stdout, stderr, content) as escaped blocks cut at a limit; numbers and
// flags (exit code, bytes, truncated) on one line.
function outputView(output) {
  const box = el("div", { id: "output" });
  if (output === null || output === undefined) {
    box.appendChild(el("p", {}, "No output yet."));
    return box;
  }
  const fields = typeof output === "object" && !Array.isArray(output) ? output : { output };
  const facts = [];
  for (const [name, value] of Object.entries(fields)) {
    if (value === null || typeof value !== "object" && typeof value !== "string") {
      facts.push(name + " " + JSON.stringify(value));
      continue;
    }
    const text = typeof value === "string" ? value : JSON.stringify(value, null, 2);
    const [shown, more] = clip(text);
    const pre = el("pre", { class: "output-" + name });
    pre.appendChild(visible(shown));
    box.append(el("h4", {}, name), pre);
    if (more) box.appendChild(el("p", { class: "hint" }, more));
  }
  if (facts.length) box.prepend(el("p", { class: "facts" }, facts.join(" · ")));
  return box;
}

async function sessionView(action) {
  if (!action.session_id) return el("span", {}, "none yet");
  const page = await getJson("/agents/" + action.agent_id + "/sessions?limit=200").catch(() => null);
  const s = page && page.items.find((x) => x.id === action.session_id);
  if (!s) return el("span", {}, action.session_id);
  const m = s.metadata || {};
  return el("span", { id: "session" }, short(s.id) + " · " + s.status + " · " +
    [m.hostname, m.os || m.platform, m.runner_version || m.version].filter(Boolean).join(" · ") +
    " · last heartbeat " + when(s.last_heartbeat));
}

async function signatureView(action, keys) {
  if (!action.approval_signature) return [el("span", {}, "not signed")];
  const out = [el("code", { id: "signature" }, action.approval_signature)];
  try {
    const kid = await verifyApproval(action, keys);
    out.push(kid
      ? el("span", { id: "signature-check", class: "verified" }, " verified with key " + kid)
      : el("span", { id: "signature-check", class: "broken" }, " does not verify with any published key"));
  } catch (err) {
    out.push(el("span", { id: "signature-check", class: "hint" }, " (this browser cannot check Ed25519: " + err.message + ")"));
  }
  return out;
}

async function timeline(events) {
  const checks = await verifyChain(events);
  const broken = checks.findIndex((c) => c !== null);
  const summary = broken < 0
    ? el("p", { id: "chain", class: "verified" }, "chain verified: " + events.length + " events")
    : el("p", { id: "chain", class: "broken" }, "chain broken at event " + events[broken].id + ": " + checks[broken]);
  const body = events.map((e, i) => el("tr", { class: checks[i] ? "broken" : "verified", "data-event-id": e.id },
    el("td", {}, when(e.created_at)),
    el("td", {}, (e.from_status || "·") + " → " + e.to_status),
    el("td", {}, (e.actor_id === me.user_id ? "you" : e.actor_id || "") + " (" + e.actor_role + ")"),
    el("td", {}, el("code", {}, jsonbText(e.detail))),
    el("td", { title: e.hash }, el("code", {}, e.hash.slice(0, 12))),
    el("td", {}, checks[i] ? "✗ " + checks[i] : "✓")));
  return [summary, el("table", { id: "events" },
    el("thead", {}, el("tr", {}, ...["when", "transition", "by", "detail", "hash", "link"].map((h) => el("th", {}, h)))),
    el("tbody", {}, ...body))];
}

async function view(root, action, keys) {
  const events = (await getJson("/actions/" + action.id + "/events")).items;
  const text = canonical(action.payload);
  const pre = el("pre", { class: "payload" });
  pre.appendChild(visible(text));
  const hashOk = (await sha256Hex(text)) === action.payload_sha256;
  const card = el("section", { class: "item", "data-action-id": action.id });
  card.append(
    el("h2", {}, action.kind === "approval" ? "Approval gate" : action.payload.tool, " ",
      el("span", { id: "action-status", class: "status status-" + action.status }, action.status)),
    el("dl", {},
      row("agent", link("#/agents/" + action.agent_id, await agentName(action.agent_id))),
      row("proposed", source(action), " · " + when(action.created_at)),
      row("payload sha256", el("code", {}, action.payload_sha256),
        hashOk ? "" : el("strong", { class: "broken" }, " (does not match the payload shown)")),
      action.status === "pending"
        ? row("expires", el("span", { class: "ttl", "data-expires": action.expires_at }, countdown(action.expires_at)))
        : null,
      action.decided_at ? row("decision", action.status === "pending" ? "" : decider(action) +
        " at " + when(action.decided_at) + (action.decision_reason ? ": " + action.decision_reason : "")) : null,
      row("policy", action.policy_id
        ? "policy " + action.policy_id + " version " + action.policy_version + " · risk " + action.risk
        : "the default policy · risk " + action.risk,
        " · " + action.required_approvals + " approval" + (action.required_approvals > 1 ? "s" : "") +
        " by " + action.approver_roles.join(", ") + (action.proposer_may_approve ? "" : ", not the proposer")),
      row("approvals", (action.approvals || []).length
        ? el("ul", { id: "approvals" }, ...action.approvals.map((a) => el("li", {},
          (a.approver_id === me.user_id ? "you" : a.approver_id) + " (" + a.approver_role + ") at " +
          when(a.created_at) + (a.reason ? ": " + a.reason : ""))))
        : (action.approved_by_policy ? "approved by the policy itself" : "none yet"),
        action.status === "pending" && action.approvals_needed
          ? " · " + action.approvals_needed + " more needed" : ""),
      row("signature", ...(await signatureView(action, keys))),
      row("runner session", await sessionView(action)),
      row("attempt", action.attempt + " of " + action.max_attempts + " · fencing token " + action.fencing_token),
      action.finished_at ? row("finished", when(action.finished_at)) : null),
    pre);
  if (action.status === "pending") {
    const reason = el("input", { class: "reason", type: "text", maxlength: "2000", placeholder: "reason (optional)", "aria-label": "reason" });
    const reject = el("button", { type: "button", class: "reject" }, "Reject");
    const approve = el("button", { type: "button", class: "approve" }, "Approve");
    const viewer = me.roles[action.organization_id] === "viewer";
    for (const control of [reason, reject, approve]) control.disabled = viewer;
    reject.addEventListener("click", () => decide(action, "reject", card));
    approve.addEventListener("click", () => decide(action, "approve", card));
    card.appendChild(el("div", { class: "decision" }, reason, reject, approve, el("span", { class: "outcome" })));
  }
  const sections = [card, el("h3", {}, "Output"), outputView(action.output), el("h3", {}, "Audit timeline"), ...(await timeline(events))];
  root.replaceChildren(...sections);
  if (action.status === "pending") {
    const reject = card.querySelector("button.reject");
    if (!reject.disabled) reject.focus();
  }
}

export async function render(root, [id]) {
  let keys = [];
  try {
    keys = (await getJson("/.well-known/agentplane/signing-key")).keys || [];
  } catch (err) {
    say("The signing keys did not load: " + err.message);
  }
  let action;
  try {
    action = await getJson("/actions/" + id);
  } catch (err) {
    if (err instanceof ProblemResponse && err.status === 404) {
      root.replaceChildren(el("p", { class: "problem" }, "No action " + id + " that you can see."));
      return null;
    }
    throw err;
  }
  await view(root, action, keys);
  let seen = action.updated_at;
  let stopped = false, timer = null;
  async function poll() {
    if (stopped) return;
    try {
      const now = await getJson("/actions/" + id);
      const typing = document.activeElement && document.activeElement.tagName === "INPUT";
      if (now.updated_at !== seen && !typing && !stopped) {
        seen = now.updated_at;
        await view(root, now, keys);
      }
      action = now;
    } catch (err) {
      say(err.message);
    }
    if (!stopped && LIVE.has(action.status)) timer = setTimeout(poll, POLL_MS);
  }
  if (LIVE.has(action.status)) timer = setTimeout(poll, POLL_MS);
  const ticker = setInterval(() => {
    for (const ttl of root.querySelectorAll(".ttl")) ttl.textContent = countdown(ttl.getAttribute("data-expires"));
  }, 1000);
  return () => { stopped = true; clearTimeout(timer); clearInterval(ticker); };
}
