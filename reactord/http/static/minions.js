// Minions: GET /api/v1/minions every 5 s (grains open on a click and stay open across
// refreshes; in a cluster, the master each is connected to); for operate and admin, a
// form that runs a function: POST /api/v1/run.
import { ago, api, badge, byId, expandable, every, h, jsonBlock, link, say, start, table, when } from "/ui/static/app.js";

const POLL_MS = 5000;
const open = new Set(); // minion ids whose grains are shown

function grains(minion) {
  const g = minion.grains || {};
  const summary = [g.os, g.osrelease, g.arch].filter((v) => typeof v === "string").join(" ") || "grains";
  const details = expandable(g, `${summary} · ${Object.keys(g).length} grains`);
  details.open = open.has(minion.id);
  details.addEventListener("toggle", () => (details.open ? open.add(minion.id) : open.delete(minion.id)));
  return details;
}

function chooser(minions) {
  const select = byId("run-target");
  if (!select) return;
  const chosen = select.value;
  const options = [h("option", { value: "*", "data-type": "glob", text: "every minion (*)" })];
  for (const m of minions) options.push(h("option", { value: m.id, "data-type": "list", text: m.id }));
  select.replaceChildren(...options);
  select.value = [...select.options].some((o) => o.value === chosen) ? chosen : "*";
}

function show(minions) {
  const clustered = minions.some((m) => "master" in m); // a single master names none
  const columns = [
    ["Minion", (m) => h("strong", { text: m.id })],
    ["Presence", (m) => badge(m.presence)],
    ...(clustered ? [["Master", (m) => m.master ?? "—"]] : []),
    ["Last seen", (m) => (m.last_seen ? ago(m.last_seen) : "never")],
    ["Version", (m) => m.version || "—"],
    ["Grains", grains],
  ];
  byId("minions").replaceChildren(
    table(columns, minions, { empty: "no minion has been accepted yet", key: (m) => m.id, testid: "minions-table" }),
  );
  chooser(minions);
  document.querySelector('[data-testid="updated"]').textContent = `updated ${when(Date.now() / 1000).slice(11)}`;
}

// "hello 42 true" -> ["hello", 42, true]: each word read as JSON when it is JSON, else text.
function words(text) {
  return text
    .split(/\s+/)
    .filter(Boolean)
    .map((word) => {
      try {
        return JSON.parse(word);
      } catch {
        return word;
      }
    });
}

function returns(answer) {
  const rows = Object.entries(answer.returns || {}).map(([id, r]) => ({ id, ...r }));
  return [
    h(
      "p",
      {},
      "job ",
      link("job", { jid: answer.jid }, answer.jid),
      `: ${answer.summary.succeeded} of ${answer.summary.minions} succeeded`,
    ),
    table(
      [
        ["Minion", (r) => r.id],
        ["Result", (r) => badge(r.success ? "ok" : "failed")],
        ["Return", (r) => jsonBlock(r.return)],
      ],
      rows,
      { empty: "no minion returned", testid: "run-returns" },
    ),
  ];
}

function runForm() {
  const form = byId("run-form");
  if (!form) return; // a read token: no form
  form.addEventListener("submit", async (submit) => {
    submit.preventDefault();
    const select = byId("run-target");
    const body = {
      target: select.value,
      target_type: select.selectedOptions[0].dataset.type,
      fun: form.elements.fun.value.trim(),
      args: words(form.elements.args.value),
    };
    const result = byId("run-result");
    const button = form.querySelector("button");
    button.disabled = true;
    result.replaceChildren(h("p", { class: "hint", text: `running ${body.fun} on ${body.target}…` }));
    try {
      result.replaceChildren(...returns(await api("/run", { method: "POST", body })));
    } catch (error) {
      result.replaceChildren();
      say(error.message);
    } finally {
      button.disabled = false;
    }
  });
}

start("minions", () => {
  runForm();
  every(POLL_MS, async () => show(await api("/minions")));
});
