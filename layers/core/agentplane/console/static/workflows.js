// The workflows pages (to be written).
import { el } from "./lib.js";
export async function renderList(root) { root.replaceChildren(el("p", {}, "Not yet.")); }
export async function renderWorkflow(root) { root.replaceChildren(el("p", {}, "Not yet.")); }
export async function renderRun(root) { root.replaceChildren(el("p", {}, "Not yet.")); }
