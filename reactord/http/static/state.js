// State: GET /api/v1/state?tag= (every 5 s); a gate check, POST /api/v1/gate (a read: it
// changes nothing) with the CLI's words: a tag glob and a condition.
import { api, badge, byId, every, expandable, h, link, say, span, start, table, when } from "/ui/static/app.js";

const POLL_MS = 5000;

function show(answer) {
  byId("rows").replaceChildren(
    table(
      [
        ["Source", (r) => h("strong", { text: r.source })],
        ["Tag", (r) => link("event", { id: r.id }, h("span", { class: "tag", text: r.tag }))],
        ["Age", (r) => h("span", { title: when(r.received), text: span(r.age) })],
        ["Presence", (r) => (r.presence ? badge(r.presence) : "—")],
        ["Fresh", (r) => (r.stale ? [badge("stale"), h("div", { class: "hint", text: r.why_stale ?? "" })] : badge("fresh", "ok"))],
        ["Data", (r) => expandable(r.data)],
      ],
      answer.rows,
      { empty: "no state reported", key: (r) => `${r.source} ${r.tag}`, testid: "state-table" },
    ),
  );
  document.querySelector('[data-testid="updated"]').textContent =
    `updated ${when(Date.now() / 1000).slice(11)} · stale after ${span(answer.ttl)}`;
}

function verdict(answer) {
  const rows = Object.entries(answer.minions).map(([id, m]) => ({ id, ...m }));
  return [
    h("p", { class: "verdict" }, "the gate is ", badge(answer.open ? "open" : "closed")),
    table(
      [
        ["Minion", (m) => h("strong", { text: m.id })],
        ["Passes", (m) => badge(m.ok ? "ok" : "failed")],
        ["Why not", (m) => h("ul", { class: "plain" }, (m.reasons || []).map((r) => h("li", { text: r })))],
      ],
      rows,
      { empty: "no minion matched the target", testid: "gate-minions" },
    ),
  ];
}

function gateForm() {
  const form = byId("gate");
  form.addEventListener("submit", async (submit) => {
    submit.preventDefault();
    const words = [form.elements.glob.value.trim()];
    if (form.elements.condition.value.trim()) words.push(form.elements.condition.value.trim());
    const body = { conditions: words, allow_stale: form.elements.allow_stale.checked };
    if (form.elements.target.value.trim()) body.target = form.elements.target.value.trim();
    try {
      byId("verdict").replaceChildren(...verdict(await api("/gate", { method: "POST", body })));
      say("");
    } catch (error) {
      byId("verdict").replaceChildren();
      say(error.message);
    }
  });
}

start("state", () => {
  const tag = byId("tag");
  tag.value = new URLSearchParams(location.search).get("tag") || "";
  const refresh = async () => {
    const query = tag.value.trim() ? "?" + new URLSearchParams({ tag: tag.value.trim() }) : "";
    show(await api("/state" + query));
  };
  byId("filter").addEventListener("submit", (submit) => {
    submit.preventDefault();
    const query = tag.value.trim() ? "?" + new URLSearchParams({ tag: tag.value.trim() }) : "";
    history.replaceState(null, "", "/ui/state" + query);
    refresh().catch((error) => say(error.message));
  });
  gateForm();
  every(POLL_MS, refresh);
});
