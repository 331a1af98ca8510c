// Jobs: GET /api/v1/jobs (the newest 100, every 5 s); each opens /ui/job?jid=.
import { api, byId, every, h, jobOutcome, link, oneLine, start, table, when } from "/ui/static/app.js";

const POLL_MS = 5000;

function show(jobs) {
  byId("jobs").replaceChildren(
    table(
      [
        ["Job", (j) => link("job", { jid: j.jid }, h("code", { text: j.jid }))],
        ["Started", (j) => when(j.created)],
        ["Function", (j) => [h("strong", { text: j.fun }), j.args.length ? ` ${oneLine(j.args, 60)}` : ""]],
        ["Target", (j) => `${j.target} (${j.target_type})`],
        ["Returned", (j) => `${j.returned ?? "?"} of ${j.minions.length}`],
        ["Outcome", jobOutcome],
        ["Origin", (j) => j.origin ?? "—"],
      ],
      jobs,
      { empty: "no jobs yet", key: (j) => j.jid, testid: "jobs-table" },
    ),
  );
  document.querySelector('[data-testid="updated"]').textContent = `updated ${when(Date.now() / 1000).slice(11)}`;
}

start("jobs", () => {
  every(POLL_MS, async () => show(await api("/jobs?limit=100")));
});
