// The mirror pages (to be written).
import { el } from "./lib.js";
export async function renderList(root) { root.replaceChildren(el("p", {}, "Not yet.")); }
export async function renderReport(root) { root.replaceChildren(el("p", {}, "Not yet.")); }
export async function renderConversation(root) { root.replaceChildren(el("p", {}, "Not yet.")); }
