// Dead letters: GET /api/v1/deadletters?status= (every 5 s); for operate and admin, a Retry
// button on each open letter (POST /api/v1/deadletters/{id}/retry), its outcome shown above.
import { api, badge, byId, can, every, expandable, h, link, say, start, table, when } from "/ui/static/app.js";

const POLL_MS = 5000;
const retrying = new Set(); // letters whose retry has not answered yet (kept across refreshes)

function retryButton(letter, refresh) {
  const button = h("button", { type: "button", "data-write": "operate", "data-testid": "retry", text: "Retry" });
  button.disabled = retrying.has(letter.id);
  button.addEventListener("click", async () => {
    button.disabled = true;
    retrying.add(letter.id);
    const shown = byId("retried");
    shown.replaceChildren(h("p", { class: "hint", text: `retrying ${letter.label}…` }));
    try {
      const results = await api(`/deadletters/${encodeURIComponent(letter.id)}/retry`, { method: "POST" });
      shown.replaceChildren(
        ...results.map((r) =>
          h(
            "p",
            { class: `message message-${r.ok ? "notice" : "error"}`, "data-testid": "retry-outcome" },
            `retry of ${r.id}: `,
            r.ok ? "ok (resolved)" : `failed again: ${r.error}`,
          ),
        ),
      );
    } catch (error) {
      shown.replaceChildren();
      say(error.message);
    }
    retrying.delete(letter.id);
    await refresh().catch((error) => say(error.message));
  });
  return button;
}

function show(letters, session, refresh) {
  const columns = [
    ["Letter", (d) => [h("code", { text: d.id }), h("div", { class: "hint", text: when(d.created) })]],
    ["Rule", (d) => h("strong", { text: d.rule })],
    ["Action", (d) => [h("div", { text: d.label }), d.params ? expandable(d.params, "parameters") : null]],
    ["Error", (d) => h("div", { class: "error-text", text: d.error })],
    ["Tries", (d) => h("span", { "data-testid": "tries", text: String(d.attempts) })],
    ["Status", (d) => badge(d.status)],
    ["Event", (d) => link("event", { id: d.event_id }, "event")],
  ];
  if (can(session, "operate")) {
    columns.push(["", (d) => (d.status === "open" && d.params !== null ? retryButton(d, refresh) : "")]);
  }
  byId("letters").replaceChildren(
    table(columns, letters, { empty: "no dead letters", key: (d) => d.id, testid: "letters-table" }),
  );
  document.querySelector('[data-testid="updated"]').textContent = `updated ${when(Date.now() / 1000).slice(11)}`;
}

start("deadletters", (session) => {
  const status = byId("status");
  const refresh = async () => show(await api(`/deadletters?status=${status.value}`), session, refresh);
  status.addEventListener("change", () => refresh().catch((error) => say(error.message)));
  every(POLL_MS, refresh);
});
