// One event (?id=): GET /api/v1/events/{id} (the event and what it caused, as a tree) and
// GET /api/v1/events/{id}/explain (why each rule whose glob matches fired or did not).
import { api, badge, byId, h, jsonBlock, link, oneLine, param, say, start, table, when } from "/ui/static/app.js";

function facts(event) {
  const rows = [
    ["Id", event.id],
    ["Tag", event.tag],
    ["Source", event.source],
    ["Sent", when(event.time)],
    ["Received", when(event.received)],
    ["Sequence", `${event.seq} (epoch ${event.epoch})`],
    ["Depth", event.depth ?? 0],
    ["Caused by", event.causation ? link("event", { id: event.causation }, event.causation) : "—"],
  ];
  return rows.flatMap(([term, value]) => [h("dt", { text: term }), h("dd", {}, value)]);
}

function decision(d) {
  return h(
    "li",
    { class: "decision" },
    badge(d.fired ? "fired" : "not fired", d.fired ? "ok" : "skipped"),
    " rule ",
    h("strong", { text: d.rule }),
    d.fired ? "" : ` — ${d.reason ?? "no reason recorded"}`,
  );
}

function action(a) {
  return h(
    "li",
    { class: "action" },
    badge(a.status),
    " ",
    h("span", { text: a.label }),
    ` · rule ${a.rule} · ${a.attempts} ${a.attempts === 1 ? "try" : "tries"}`,
    a.jid ? [" · job ", link("job", { jid: a.jid }, a.jid)] : null,
    a.error ? h("div", { class: "error-text", text: a.error }) : null,
  );
}

function job(j) {
  const s = j.summary || {};
  return h(
    "li",
    { class: "job" },
    "job ",
    link("job", { jid: j.jid }, j.jid),
    ` · ${j.fun} on ${j.target} · ${s.succeeded ?? 0} of ${s.minions ?? j.minions.length} succeeded`,
  );
}

// One event of the chain and, nested under it, everything it caused.
function node(event, root) {
  const children = [
    ...event.decisions.map(decision),
    ...event.actions.map(action),
    ...event.jobs.map(job),
    ...event.caused.map((e) => node(e, false)),
  ];
  const head = root
    ? h("span", { class: "tag", text: `${event.tag} (this event)` })
    : [link("event", { id: event.id }, h("span", { class: "tag", text: event.tag })), ` from ${event.source} · ${oneLine(event.data, 80)}`];
  return h(
    "li",
    { class: "event-node" },
    head,
    children.length ? h("ul", {}, children) : h("div", { class: "hint", text: "caused nothing" }),
  );
}

function decisions(list) {
  if (list === null) return h("p", { class: "hint", text: "not a logged event" });
  return table(
    [
      ["Rule", (d) => h("strong", { text: d.rule })],
      ["Decision", (d) => badge(d.fired ? "fired" : "not fired", d.fired ? "ok" : "skipped")],
      ["Why", (d) => (d.fired ? "its glob and conditions matched" : (d.reason ?? "—")) + (d.recomputed ? " (worked out again now)" : "") + (d.replay ? " (replay)" : "")],
    ],
    list,
    { empty: "no rule listens to this tag" },
  );
}

start("events", async () => {
  const id = param("id");
  if (!id) {
    say("no event id: open an event from the events page");
    return;
  }
  const path = `/events/${encodeURIComponent(id)}`;
  const [event, explained] = await Promise.all([api(path), api(path + "/explain")]);
  document.title = `${event.tag} · reactord`;
  byId("title").textContent = event.tag;
  byId("facts").replaceChildren(...facts(event));
  byId("data").replaceChildren(jsonBlock(event.data));
  byId("chain").replaceChildren(h("ul", { class: "tree" }, node(event, true)));
  byId("recorded").replaceChildren(decisions(explained.recorded));
  byId("now").replaceChildren(decisions(explained.now));
});
