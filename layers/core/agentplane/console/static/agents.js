// The agents pages (to be written).
import { el } from "./lib.js";
export async function renderList(root) { root.replaceChildren(el("p", {}, "Not yet.")); }
export async function renderAgent(root) { root.replaceChildren(el("p", {}, "Not yet.")); }
