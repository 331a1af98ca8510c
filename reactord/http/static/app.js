// The dashboard's shared parts: the API client, building the page from data (as text, never
// as markup), the layout, role gates. Each page is a small module that imports these.
//
// The one rule of this code: a value that came from the master (and so maybe from a minion
// or a webhook) enters the page through textContent or an attribute set one by one, never
// through innerHTML or a string of HTML. The Content-Security-Policy would stop a script that
// slipped in anyway; this keeps it from getting that far.

export const ROLES = ["read", "operate", "admin"];

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let csrf = null; // the login's CSRF token, from GET /api/v1/session

// A call to /api/v1: JSON in and out. A write carries the login's CSRF token; a login that has
// ended sends the browser back to the login page.
export async function api(path, { method = "GET", body, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") {
    headers["X-CSRF-Token"] = csrf || "";
    if (body !== undefined) headers["Content-Type"] = "application/json";
  }
  const response = await fetch("/api/v1" + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    cache: "no-store",
    signal,
  });
  if (response.status === 401) {
    location.assign("/ui/login");
    throw new ApiError(401, "the login has ended");
  }
  const answer = await response.json().catch(() => null);
  if (!response.ok) {
    const reason = answer && typeof answer.error === "string" ? answer.error : response.statusText;
    throw new ApiError(response.status, `${response.status}: ${reason}`);
  }
  return answer;
}

// h("a", {href: "/x", class: "tag"}, "text", child) -> an element. Strings become text nodes;
// attributes are set one by one (an href must be one of ours: see link()).
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = String(value);
    else if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children.flat().filter((c) => c !== null && c !== undefined).map(asNode));
  return node;
}

function asNode(child) {
  return child instanceof Node ? child : document.createTextNode(String(child));
}

// A link to one of the dashboard's pages with its query built from values (escaped here).
export function link(page, params, ...children) {
  const query = new URLSearchParams(params).toString();
  return h("a", { href: `/ui/${page}${query ? "?" + query : ""}` }, ...children);
}

export function byId(id) {
  return document.getElementById(id);
}

export function param(name) {
  return new URLSearchParams(location.search).get(name);
}

// Seconds since the epoch -> "2026-12-02 16:49:16", local time.
export function when(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const d = new Date(seconds * 1000);
  const two = (n) => String(n).padStart(2, "0");
  return (
    `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ` +
    `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`
  );
}

// A duration in seconds -> "4s", "3m 2s", "5h 10m", "2d 3h".
export function span(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

// A time as "12s ago", the exact time in its tooltip.
export function ago(seconds) {
  if (seconds === null || seconds === undefined) return h("span", { text: "—" });
  return h("time", { title: when(seconds), text: `${span(Date.now() / 1000 - seconds)} ago` });
}

// Any value as one line of JSON, cut at `max` characters.
export function oneLine(value, max = 120) {
  const text = JSON.stringify(value) ?? "null";
  return text.length > max ? text.slice(0, max - 1) + "…" : text;
}

// Any value as indented JSON in a <pre>.
export function jsonBlock(value) {
  return h("pre", { class: "json", text: JSON.stringify(value, null, 2) ?? "null" });
}

// A value shown as one line that opens to the whole of it.
export function expandable(value, summary = oneLine(value, 80)) {
  return h("details", { class: "value" }, h("summary", { text: summary }), jsonBlock(value));
}

export function badge(text, kind = text) {
  return h("span", { class: `badge badge-${kind}`, text });
}

// A job's outcome in one word, from its summary (none yet: running).
export function jobOutcome(job) {
  const s = job.summary;
  if (!s) return badge("running");
  if (s.failed.length || s.no_return.length || s.not_run.length || s.stopped_by) return badge("failed");
  return badge("ok");
}

// A table: columns are [title, row -> cell content]; `key` names a row (data-key).
export function table(columns, rows, { empty = "nothing to show", key, testid } = {}) {
  const head = h("thead", {}, h("tr", {}, columns.map(([title]) => h("th", { text: title }))));
  const body = h("tbody");
  for (const row of rows) {
    body.append(
      h(
        "tr",
        { dataset: key ? { key: key(row) } : {} },
        columns.map(([, cell]) => h("td", {}, cell(row))),
      ),
    );
  }
  if (!rows.length) {
    body.append(h("tr", {}, h("td", { class: "empty", colspan: columns.length, text: empty })));
  }
  return h("table", { dataset: testid ? { testid } : {} }, head, body);
}

// The page's message line: an error in red (and in the console), or a notice.
export function say(message, kind = "error") {
  if (message && kind === "error") console.error(`reactord: ${message}`);
  const line = byId("message");
  if (!line) return;
  line.textContent = message;
  line.className = `message message-${kind}`;
  line.hidden = !message;
}

// Run `step` now and every `ms` milliseconds after it ends (never two at once); an error is
// shown and the polling goes on.
export function every(ms, step) {
  let timer = null;
  let failing = false;
  const tick = async () => {
    try {
      await step();
      if (failing) say("");
      failing = false;
    } catch (error) {
      say(error.message);
      failing = true;
    }
    timer = setTimeout(tick, ms);
  };
  tick();
  return () => clearTimeout(timer);
}

export function can(session, role) {
  return session.roles.includes(role);
}

const NAV = [
  ["overview", "/ui/", "Overview"],
  ["minions", "/ui/minions", "Minions"],
  ["events", "/ui/events", "Events"],
  ["rules", "/ui/rules", "Rules"],
  ["jobs", "/ui/jobs", "Jobs"],
  ["deadletters", "/ui/deadletters", "Dead letters"],
  ["state", "/ui/state", "State"],
];

function header(session, active) {
  const nav = h(
    "nav",
    {},
    NAV.map(([name, href, title]) =>
      h("a", { href, class: name === active ? "active" : null, text: title }),
    ),
  );
  const logout = h("button", { type: "button", class: "quiet", "data-testid": "logout", text: "Log out" });
  logout.addEventListener("click", async () => {
    await fetch("/ui/logout", { method: "POST", headers: { "X-CSRF-Token": csrf || "" } });
    location.assign("/ui/login");
  });
  const who = h(
    "span",
    { class: "who", "data-testid": "who" },
    h("span", { "data-testid": "token-name", text: session.name }),
    " ",
    h("span", { class: "badge badge-role", "data-testid": "token-role", text: session.role }),
  );
  return [h("a", { href: "/ui/", class: "brand", text: "reactord" }), nav, h("span", { class: "user" }, who, logout)];
}

// Every page starts here: who is logged in, the layout, the role gates, then the page's own
// code with the session. Elements marked data-write="operate" (or "admin") are taken out of
// the page for a token without that role: a read token gets no write control at all.
export async function start(active, main) {
  let session;
  try {
    session = await api("/session");
  } catch (error) {
    say(error.message);
    return;
  }
  csrf = session.csrf;
  byId("top").replaceChildren(...header(session, active));
  for (const node of document.querySelectorAll("[data-write]")) {
    if (can(session, node.dataset.write)) node.hidden = false;
    else node.remove();
  }
  try {
    await main(session);
  } catch (error) {
    say(error.message);
  }
}
