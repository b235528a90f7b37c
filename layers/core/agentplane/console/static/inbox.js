// The inbox: pending actions of every organization the person belongs to, riskiest
// first and newest first within a risk, refreshed every few seconds (304 while nothing
// changed). Each card shows the exact payload, its hash, its TTL and the buttons.
import {
  RISK_ORDER, agentName, canonical, countdown, el, getJson, link, me, poller, postJson, say,
  sha256Hex, short, visible, when,
} from "./lib.js";

const POLL_MS = 3000;
let selected = 0;
let focusId = null;
// Decisions made from this page, so a card keeps its outcome until the list drops it.
const outcomes = new Map();

export function source(action) {
  if (action.workflow_run_id) {
    return el("span", {}, "workflow run ",
      link("#/workflow-runs/" + action.workflow_run_id, short(action.workflow_run_id)),
      " (node " + action.workflow_node_id + ")");
  }
  if (action.message_id) return el("span", {}, "a turn of the agent (message " + short(action.message_id) + ")");
  return el("span", {}, "proposed by " + (action.proposed_by === me.user_id ? "you" : action.proposed_by || "a server job"));
}

export function decider(action) {
  if (!action.decided_by) return "the server";
  return action.decided_by === me.user_id ? "you" : action.decided_by;
}

// A decision through the API; the card then says what happened, including a lost race
// (who won, and the action's state now) or an expiry.
export async function decide(action, decision, card) {
  const reasonBox = card.querySelector("input.reason");
  const reason = reasonBox && reasonBox.value.trim() ? reasonBox.value.trim() : undefined;
  for (const button of card.querySelectorAll("button")) button.disabled = true;
  const resp = await postJson("/actions/" + action.id + "/" + decision, reason ? { reason } : {});
  const outcome = card.querySelector(".outcome");
  let text;
  if (resp.ok) {
    const done = await resp.json();
    text = done.status === "pending" && decision === "approve"
      ? "your approval is recorded: " + done.approval_count + " of " + done.required_approvals +
        ", " + done.approvals_needed + " more needed"
      : done.status + (reason ? " (" + reason + ")" : "");
  } else {
    const problem = await resp.json().catch(() => ({}));
    text = problem.detail || resp.statusText;
    if (problem.rule) text += " [" + problem.rule + "]";
    if (resp.status === 409) {
      const now = await getJson("/actions/" + action.id).catch(() => null);
      if (now && now.decided_at) {
        text = "too late: " + decider(now) + " " + now.status + " it at " + when(now.decided_at) + "; it is " + now.status;
      } else if (now) {
        text = "too late: it is " + now.status;
      }
    }
  }
  outcome.textContent = text;
  outcomes.set(action.id, text);
  say("Action " + action.id + ": " + text);
  return text;
}

async function card(action) {
  const item = el("li", { class: "item", "data-action-id": action.id });
  const risk = action.risk;
  item.appendChild(el("div", { class: "meta" },
    el("span", { class: "risk risk-" + risk }, risk), " · agent ",
    link("#/agents/" + action.agent_id, await agentName(action.agent_id)), " · ", source(action),
    " · ", when(action.created_at),
    action.required_approvals > 1
      ? el("span", { class: "approvals" }, " · approvals " + action.approval_count + " of " + action.required_approvals)
      : null,
    action.escalated_at ? el("strong", { class: "escalated" }, " · escalated") : null));
  item.appendChild(el("h3", {}, link("#/actions/" + action.id,
    action.kind === "approval" ? "Approval gate" : action.payload.tool)));
  const text = canonical(action.payload);
  const pre = el("pre", { class: "payload" });
  pre.appendChild(visible(text));
  item.appendChild(pre);
  const hashLine = el("div", { class: "hash" }, "sha256 " + action.payload_sha256);
  if ((await sha256Hex(text)) !== action.payload_sha256) {
    hashLine.appendChild(el("strong", { class: "broken" }, " (does not match the payload shown)"));
  }
  item.appendChild(hashLine);
  item.appendChild(el("div", { class: "ttl", "data-expires": action.expires_at }, countdown(action.expires_at)));
  const reason = el("input", { class: "reason", type: "text", maxlength: "2000", placeholder: "reason (optional)", "aria-label": "reason" });
  const reject = el("button", { type: "button", class: "reject" }, "Reject");
  const approve = el("button", { type: "button", class: "approve" }, "Approve");
  reject.addEventListener("click", () => decide(action, "reject", item));
  approve.addEventListener("click", () => decide(action, "approve", item));
  const outcome = el("span", { class: "outcome" }, outcomes.get(action.id) || "");
  if (me.roles[action.organization_id] === "viewer") {
    // The API refuses a viewer's decision (403); the page says so before anyone tries.
    for (const button of [reject, approve]) {
      button.disabled = true;
      button.title = "viewers cannot decide";
    }
    reason.disabled = true;
  }
  if (outcomes.has(action.id)) for (const b of [reject, approve]) b.disabled = true;
  item.appendChild(el("div", { class: "decision" }, reason, reject, approve, outcome));
  return item;
}

function ordered(page) {
  // Riskiest first; within a risk, newest first (the list comes newest first).
  return page.items.map((a, i) => [a, i])
    .sort(([a, i], [b, j]) => (RISK_ORDER[a.risk] - RISK_ORDER[b.risk]) || i - j)
    .map(([a]) => a);
}

function select(index) {
  const cards = document.querySelectorAll("#items .item");
  selected = Math.max(0, Math.min(index, cards.length - 1));
  cards.forEach((c, i) => c.classList.toggle("selected", i === selected));
  const reject = cards[selected] && cards[selected].querySelector("button.reject");
  // The default focus is on Reject: Enter never approves by accident.
  if (reject && !reject.disabled) reject.focus();
  if (cards[selected] && focusId) cards[selected].scrollIntoView({ block: "nearest" });
}

export async function render(root, _params, query) {
  focusId = query.get("focus");
  const section = el("section", { id: "inbox" },
    el("h2", {}, "Pending actions ", el("span", { id: "count" })),
    el("p", { class: "hint" }, "Riskiest first. Keys: ", el("kbd", {}, "a"), " approve, ",
      el("kbd", {}, "r"), " reject, ", el("kbd", {}, "j"), " next, ", el("kbd", {}, "k"), " previous."),
    el("ol", { id: "items" }),
    el("p", { id: "empty", hidden: "" }, "Nothing waits for a decision."));
  root.replaceChildren(section);
  const list = section.querySelector("#items");
  const watch = poller("/actions?status=pending&order=newest&limit=200", POLL_MS, async (page) => {
    const items = ordered(page);
    const cards = [];
    for (const action of items) cards.push(await card(action));
    const current = list.children[selected];
    const keep = current ? current.getAttribute("data-action-id") : null;
    list.replaceChildren(...cards);
    // One page of the newest 200; the rest wait behind them (the count says so).
    section.querySelector("#count").textContent = "(" + items.length + (page.next_cursor ? "+, the newest shown" : "") + ")";
    section.querySelector("#empty").hidden = items.length > 0;
    const wanted = focusId || keep;
    const at = items.findIndex((a) => a.id === wanted);
    select(at >= 0 ? at : selected);
    focusId = null;
  }, (status) => say("The inbox did not load: " + status));
  const onKey = (event) => {
    const cards = document.querySelectorAll("#items .item");
    if (!cards.length || event.target.tagName === "INPUT" || event.ctrlKey || event.metaKey || event.altKey) return;
    const current = cards[selected];
    if (event.key === "j") select((selected + 1) % cards.length);
    else if (event.key === "k") select((selected - 1 + cards.length) % cards.length);
    else if (event.key === "a") current.querySelector("button.approve").click();
    else if (event.key === "r") current.querySelector("button.reject").click();
  };
  document.addEventListener("keydown", onKey);
  const ticker = setInterval(() => {
    for (const ttl of root.querySelectorAll(".ttl")) {
      const left = countdown(ttl.getAttribute("data-expires"));
      ttl.textContent = left;
      const expired = left === "expired";
      ttl.classList.toggle("expired", expired);
      if (expired) {
        // It can no longer be approved; the API would say so (409) and the poll drops it.
        for (const b of ttl.parentElement.querySelectorAll("button")) b.disabled = true;
      }
    }
  }, 1000);
  return () => {
    watch.stop();
    clearInterval(ticker);
    document.removeEventListener("keydown", onKey);
  };
}
