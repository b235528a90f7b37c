// The workflows pages: the list, one workflow (its DAG and its runs), and one run drawn
// as an SVG DAG coloured by each node's state, polled until the run is finished.
// Every value from the API is text (el(), textContent, createElementNS), never HTML.
import { el, getJson, link, say, short, when } from "./lib.js";

const RUN_POLL_MS = 2500;
const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
const SVG = "http://www.w3.org/2000/svg";
const NODE_W = 150, NODE_H = 46, COL_GAP = 70, ROW_GAP = 24, PAD = 16;
// Longer ids are cut in the box (the node's <title> and the table have them whole).
const LABEL_MAX = 17;

function status(value, extra = "") {
  return el("span", { class: ("status status-" + value + " " + extra).trim() }, value);
}

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null && value !== false) node.setAttribute(key, String(value));
  }
  for (const child of children) {
    if (child === undefined || child === null) continue;
    node.append(typeof child === "string" || typeof child === "number" ? String(child) : child);
  }
  return node;
}

function json(value) {
  if (value === undefined || value === null) return "";
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

// Each node's column: the longest path to it from a root (a node with no incoming edge).
// Nodes in a cycle (which a saved definition never has) fall into the last column.
export function layers(definition) {
  const nodes = (definition.nodes || []).map((n) => n.id);
  const edges = (definition.edges || []).filter((e) => nodes.includes(e.from) && nodes.includes(e.to));
  const incoming = new Map(nodes.map((id) => [id, 0]));
  for (const e of edges) incoming.set(e.to, incoming.get(e.to) + 1);
  const depth = new Map(nodes.map((id) => [id, 0]));
  const queue = nodes.filter((id) => incoming.get(id) === 0);
  const seen = new Set();
  while (queue.length) {
    const id = queue.shift();
    seen.add(id);
    for (const e of edges) {
      if (e.from !== id) continue;
      depth.set(e.to, Math.max(depth.get(e.to), depth.get(id) + 1));
      incoming.set(e.to, incoming.get(e.to) - 1);
      if (incoming.get(e.to) === 0) queue.push(e.to);
    }
  }
  const deepest = Math.max(0, ...depth.values());
  for (const id of nodes) if (!seen.has(id)) depth.set(id, deepest + 1);
  return { nodes, edges, depth };
}

function inboxHref(state) {
  // Waiting on a pending action (a gate or an action's approval): the inbox entry.
  return state && state.status === "waiting" && state.action_id && state.action_status === "pending"
    ? "#/?focus=" + state.action_id : null;
}

// The DAG as SVG: columns left to right by depth, one rect per node coloured by its
// state (class node-<status>), edges with arrowheads; `states` maps node id -> state.
export function drawDag(definition, states = new Map()) {
  const { nodes, edges, depth } = layers(definition);
  const columns = [];
  for (const id of nodes) (columns[depth.get(id)] = columns[depth.get(id)] || []).push(id);
  const at = new Map();
  const tallest = Math.max(1, ...columns.map((c) => (c ? c.length : 0)));
  const height = PAD * 2 + tallest * NODE_H + (tallest - 1) * ROW_GAP;
  columns.forEach((column, col) => {
    if (!column) return;
    const span = column.length * NODE_H + (column.length - 1) * ROW_GAP;
    const top = (height - span) / 2;
    column.forEach((id, i) => at.set(id, { x: PAD + col * (NODE_W + COL_GAP), y: top + i * (NODE_H + ROW_GAP) }));
  });
  const width = PAD * 2 + Math.max(1, columns.length) * NODE_W + Math.max(0, columns.length - 1) * COL_GAP;
  const root = svg("svg", {
    id: "dag", class: "dag", xmlns: SVG, width, height, viewBox: "0 0 " + width + " " + height,
    role: "img", "aria-label": "workflow graph",
  });
  root.appendChild(svg("defs", {}, svg("marker", {
    id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 8, markerHeight: 8, orient: "auto-start-reverse",
  }, svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead" }))));
  const edgeLayer = svg("g", { class: "edges" });
  for (const e of edges) {
    const a = at.get(e.from), b = at.get(e.to);
    const x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2, x2 = b.x, y2 = b.y + NODE_H / 2;
    const bend = Math.max(20, (x2 - x1) / 2);
    const path = svg("path", {
      class: "edge" + (e.when ? " edge-when" : ""), "data-from": e.from, "data-to": e.to,
      d: `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2} ${y2}`, "marker-end": "url(#arrow)",
    });
    if (e.when) path.appendChild(svg("title", {}, "when " + e.when));
    edgeLayer.appendChild(path);
  }
  root.appendChild(edgeLayer);
  const types = new Map((definition.nodes || []).map((n) => [n.id, n.type]));
  for (const id of nodes) {
    const state = states.get(id);
    const nodeStatus = state ? state.status : "definition";
    const { x, y } = at.get(id);
    const group = svg("g", { class: "node node-" + nodeStatus, "data-node-id": id, "data-status": nodeStatus },
      svg("title", {}, id + " (" + types.get(id) + "): " + nodeStatus),
      svg("rect", { x, y, width: NODE_W, height: NODE_H, rx: 6, ry: 6 }),
      svg("text", { x: x + 10, y: y + 19, class: "node-label" }, id.length > LABEL_MAX ? id.slice(0, LABEL_MAX - 1) + "…" : id),
      svg("text", { x: x + 10, y: y + 36, class: "node-status" },
        (types.get(id) || "") + (state ? " · " + nodeStatus + (state.attempts > 1 ? " ×" + state.attempts : "") : "")));
    const href = inboxHref(state);
    root.appendChild(href ? svg("a", { href, class: "node-link", "data-action-id": state.action_id }, group) : group);
  }
  return root;
}

export async function renderList(root) {
  const list = el("ul", { id: "workflow-list", class: "plain-list" });
  const more = el("button", { type: "button", id: "workflows-more", hidden: "" }, "More");
  const empty = el("p", { id: "workflows-empty", hidden: "" }, "No workflows you can see.");
  root.replaceChildren(el("section", { id: "workflows" }, el("h2", {}, "Workflows"), list, empty, more));
  let cursor = null;
  async function load() {
    more.disabled = true;
    const page = await getJson("/workflows?limit=50" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
    for (const w of page.items) {
      list.appendChild(el("li", { "data-workflow-id": w.id },
        link("#/workflows/" + w.id, w.name), " ",
        el("span", { class: "hint" }, "v" + w.version + " · " + ((w.definition.nodes || []).length) + " nodes · updated " + when(w.updated_at))));
    }
    cursor = page.next_cursor;
    more.hidden = !cursor;
    more.disabled = false;
    empty.hidden = list.children.length > 0;
  }
  more.addEventListener("click", () => load().catch((err) => say("Workflows did not load: " + err.message)));
  await load();
}

export async function renderWorkflow(root, params) {
  const id = params[0];
  const workflow = await getJson("/workflows/" + id);
  const runs = el("ul", { id: "runs", class: "plain-list" });
  const more = el("button", { type: "button", id: "runs-more", hidden: "" }, "More");
  const empty = el("p", { id: "runs-empty", class: "hint", hidden: "" }, "No runs yet.");
  const definition = el("pre", { id: "definition" }, JSON.stringify(workflow.definition, null, 2));
  root.replaceChildren(el("section", { id: "workflow", "data-workflow-id": workflow.id },
    el("h2", {}, workflow.name, " ", el("span", { class: "hint" }, "version " + workflow.version)),
    el("p", { class: "hint" }, workflow.description || ""),
    el("div", { class: "dag-box" }, drawDag(workflow.definition)),
    el("details", {}, el("summary", {}, "Definition"), definition),
    el("h3", {}, "Runs"), runs, empty, more));
  let cursor = null;
  async function load() {
    more.disabled = true;
    const page = await getJson("/workflows/" + id + "/runs?limit=50" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
    for (const r of page.items) {
      runs.appendChild(el("li", { "data-run-id": r.id, "data-status": r.status },
        link("#/workflow-runs/" + r.id, short(r.id)), " ", status(r.status), " ",
        el("span", { class: "hint" }, "v" + r.workflow_version + " · started " + when(r.started_at || r.created_at) +
          (r.finished_at ? " · finished " + when(r.finished_at) : "") + (r.error ? " · " + r.error : ""))));
    }
    cursor = page.next_cursor;
    more.hidden = !cursor;
    more.disabled = false;
    empty.hidden = runs.children.length > 0;
  }
  more.addEventListener("click", () => load().catch((err) => say("Runs did not load: " + err.message)));
  await load();
}

function nodeTable(run) {
  const body = el("tbody");
  for (const n of run.nodes) {
    body.appendChild(el("tr", { "data-node-id": n.id, "data-status": n.status, class: n.status === "failed" ? "broken" : null },
      el("td", {}, el("code", {}, n.id)),
      el("td", {}, n.type),
      el("td", {}, status(n.status, "node-state"), n.handled ? " (handled)" : ""),
      el("td", {}, String(n.attempts)),
      el("td", {}, n.action_id ? link("#/actions/" + n.action_id, short(n.action_id)) : "",
        n.action_status ? " " + n.action_status : ""),
      el("td", {}, n.output !== null && n.output !== undefined ? el("pre", { class: "node-output" }, json(n.output)) : ""),
      el("td", {}, n.error ? el("pre", { class: "node-error" }, json(n.error)) : ""),
      el("td", {}, when(n.started_at), n.finished_at ? " → " + when(n.finished_at) : "",
        n.not_before ? " (retry after " + when(n.not_before) + ")" : "")));
  }
  return el("table", { id: "nodes" },
    el("thead", {}, el("tr", {}, ...["node", "type", "status", "attempts", "action", "output", "error", "time"].map((h) => el("th", {}, h)))),
    body);
}

function waitingList(run) {
  const list = el("ul", { id: "waiting", class: "plain-list" });
  for (const n of run.nodes) {
    const href = inboxHref(n);
    if (href) {
      list.appendChild(el("li", { "data-node-id": n.id, "data-action-id": n.action_id },
        link(href, (n.type === "approval" ? "Approve or reject " : "Decide on the action of ") + n.id), " in the inbox"));
    } else if (n.status === "waiting" && n.action_id) {
      list.appendChild(el("li", { "data-node-id": n.id, "data-action-id": n.action_id },
        n.id + " waits on its action (" + (n.action_status || "?") + "): ", link("#/actions/" + n.action_id, short(n.action_id))));
    }
  }
  return list;
}

function callbacksTable(run) {
  if (!run.callbacks || !run.callbacks.length) return el("p", { class: "hint" }, "No callbacks.");
  return el("table", { id: "callbacks" },
    el("thead", {}, el("tr", {}, ...["kind", "node", "attempts", "delivered", "outcome", "last error"].map((h) => el("th", {}, h)))),
    el("tbody", {}, ...run.callbacks.map((c) => el("tr", {},
      el("td", {}, c.kind), el("td", {}, c.node_id || ""), el("td", {}, String(c.attempts)),
      el("td", {}, when(c.delivered_at)), el("td", {}, c.outcome || ""), el("td", {}, c.last_error || "")))));
}

function runView(run) {
  const states = new Map(run.nodes.map((n) => [n.id, n]));
  const waiting = waitingList(run);
  return el("section", { id: "run", "data-run-id": run.id, "data-status": run.status },
    el("h2", {}, "Run ", short(run.id), " ", status(run.status, "run-status")),
    el("p", { class: "hint" }, "workflow ", link("#/workflows/" + run.workflow_id, short(run.workflow_id)),
      " · version " + run.workflow_version + " · started " + when(run.started_at || run.created_at) +
      (run.finished_at ? " · finished " + when(run.finished_at) : "") +
      (run.executions > 1 ? " · " + run.executions + " executions" : "")),
    run.error ? el("p", { id: "run-error", class: "problem" }, run.error) : null,
    el("p", { id: "run-live", class: "hint" }, FINISHED.has(run.status) ? "Finished." : "Refreshing every few seconds."),
    el("div", { class: "dag-box" }, drawDag(run.definition, states)),
    waiting.children.length ? el("h3", {}, "Waiting") : null, waiting,
    el("h3", {}, "Nodes"), nodeTable(run),
    run.output !== null && run.output !== undefined
      ? el("div", {}, el("h3", {}, "Output"), el("pre", { id: "run-output" }, json(run.output))) : null,
    el("details", {}, el("summary", {}, "Callbacks to Step Functions"), callbacksTable(run)),
    el("details", {}, el("summary", {}, "Input"), el("pre", { id: "run-input" }, json(run.input))));
}

// The run, polled every few seconds while it is not finished; re-drawn only on change.
export async function renderRun(root, params) {
  const id = params[0];
  let shown = null, timer = null, stopped = false;
  async function once() {
    try {
      const run = await getJson("/workflow-runs/" + id);
      if (stopped) return;
      const text = JSON.stringify(run);
      if (text !== shown) {
        // Keep which <details> were open across a re-draw.
        const open = [...root.querySelectorAll("#run details")].map((d) => d.open);
        root.replaceChildren(runView(run));
        root.querySelectorAll("#run details").forEach((d, i) => { d.open = !!open[i]; });
        shown = text;
      }
      if (FINISHED.has(run.status)) stopped = true;
    } catch (err) {
      if (shown === null) {
        stopped = true; // the first load failed: the router shows why, nothing polls
        throw err;
      }
      say("The run did not refresh: " + err.message);
    } finally {
      if (!stopped) timer = setTimeout(() => once().catch(() => {}), RUN_POLL_MS);
    }
  }
  await once();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
