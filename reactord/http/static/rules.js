// Rules: GET /api/v1/rules (refreshed every 5 s for the fire counts); an explain box
// (POST /api/v1/rules/explain, a read); for admin, reload (POST /api/v1/rules/reload).
import { api, badge, byId, every, h, say, start, table } from "/ui/static/app.js";

const POLL_MS = 5000;

// A correlation's, sequence's or absence's keys held against its limit, and those dropped.
function keys(r) {
  if (!r.state) return r.describe ? h("span", { class: "hint", text: r.describe }) : "—";
  const held = `${r.state.keys} / ${r.state.max_keys}`;
  return [
    h("div", { text: r.state.dropped ? `${held} (${r.state.dropped} dropped)` : held }),
    h("div", { class: "hint", text: r.describe }),
  ];
}

function show(rules) {
  byId("rules").replaceChildren(
    table(
      [
        ["Rule", (r) => [h("strong", { text: r.name }), r.description ? h("div", { class: "hint", text: r.description }) : null]],
        ["File", (r) => h("code", { title: r.file, text: `${r.file.split("/").pop()}:${r.line}` })],
        ["On", (r) => r.on.map((glob) => h("div", { class: "tag", text: glob }))],
        ["Enabled", (r) => badge(r.enabled ? "enabled" : "disabled", r.enabled ? "ok" : "skipped")],
        ["Fired", (r) => String(r.fired)],
        ["Keys", (r) => keys(r)],
        ["Actions", (r) => h("ul", { class: "plain" }, r.actions.map((a) => h("li", { text: a })))],
      ],
      rules,
      { empty: "no rules loaded", key: (r) => r.name, testid: "rules-table" },
    ),
  );
}

function decisions(answer) {
  return table(
    [
      ["Rule", (d) => h("strong", { text: d.rule })],
      ["Decision", (d) => badge(d.fired ? "fired" : "not fired", d.fired ? "ok" : "skipped")],
      ["Why not", (d) => (d.fired ? "" : (d.reason ?? "—"))],
    ],
    answer.now,
    { empty: "no rule listens to this tag" },
  );
}

function explainBox() {
  byId("explain-id").addEventListener("submit", (submit) => {
    submit.preventDefault();
    const id = submit.target.elements.id.value.trim();
    location.assign("/ui/event?" + new URLSearchParams({ id }));
  });
  const form = byId("explain");
  form.addEventListener("submit", async (submit) => {
    submit.preventDefault();
    const event = { tag: form.elements.tag.value.trim() };
    if (form.elements.source.value.trim()) event.source = form.elements.source.value.trim();
    try {
      if (form.elements.data.value.trim()) event.data = JSON.parse(form.elements.data.value);
      byId("explained").replaceChildren(decisions(await api("/rules/explain", { method: "POST", body: { event } })));
      say("");
    } catch (error) {
      byId("explained").replaceChildren();
      say(error instanceof SyntaxError ? `the data is not JSON: ${error.message}` : error.message);
    }
  });
}

function reloadButton(refresh) {
  const button = byId("reload");
  if (!button) return; // not admin: no button
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const answer = await api("/rules/reload", { method: "POST" });
      say(`reloaded: ${answer.reloaded}`, "notice");
      await refresh();
    } catch (error) {
      say(error.message);
    } finally {
      button.disabled = false;
    }
  });
}

start("rules", () => {
  const refresh = async () => show(await api("/rules"));
  explainBox();
  reloadButton(refresh);
  every(POLL_MS, refresh);
});
