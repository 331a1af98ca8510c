// One job (?jid=): GET /api/v1/jobs/{jid} with each minion's return; read again every 2 s
// until it has finished.
import { api, badge, byId, h, jobOutcome, jsonBlock, link, param, say, span, start, table, when } from "/ui/static/app.js";

const POLL_MS = 2000;

function facts(job) {
  const s = job.summary;
  const rows = [
    ["Job", job.jid],
    ["Function", job.fun],
    ["Arguments", JSON.stringify(job.args)],
    ["Keyword arguments", JSON.stringify(job.kwargs)],
    ["Target", `${job.target} (${job.target_type}): ${job.minions.join(", ") || "no minion"}`],
    ["Started", when(job.created)],
    ["Timeout", `${job.timeout}s`],
    ["Origin", job.origin ?? "—"],
    ["Caused by", job.causation ? link("event", { id: job.causation }, job.causation) : "—"],
    ["Outcome", job.finished ? jobOutcome(job) : badge("running")],
    [
      "Summary",
      s
        ? `${s.succeeded} of ${s.minions} succeeded` +
          (s.failed.length ? `; failed: ${s.failed.join(", ")}` : "") +
          (s.no_return.length ? `; no return: ${s.no_return.join(", ")}` : "") +
          (s.not_run.length ? `; not run: ${s.not_run.join(", ")}` : "")
        : "—",
    ],
  ];
  return rows.flatMap(([term, value]) => [h("dt", { text: term }), h("dd", {}, value)]);
}

function took(seconds) {
  return seconds < 1 ? `${(seconds * 1000).toFixed(1)} ms` : span(seconds);
}

function returns(job) {
  const rows = job.minions.map((id) => ({ id, ...(job.returns[id] || { missing: true }) }));
  return table(
    [
      ["Minion", (r) => h("strong", { text: r.id })],
      ["Result", (r) => (r.missing ? badge("no return", "skipped") : badge(r.success ? "ok" : "failed"))],
      ["Exit", (r) => (r.missing ? "—" : String(r.retcode))],
      ["Took", (r) => (r.finished && r.started ? took(r.finished - r.started) : "—")],
      ["Return", (r) => (r.missing ? "—" : jsonBlock(r.return))],
    ],
    rows,
    { empty: "the target matched no minion", key: (r) => r.id, testid: "returns-table" },
  );
}

start("jobs", async () => {
  const jid = param("jid");
  if (!jid) {
    say("no job id: open a job from the jobs page");
    return;
  }
  const read = async () => {
    const job = await api(`/jobs/${encodeURIComponent(jid)}`);
    byId("title").textContent = `${job.fun} · ${job.jid}`;
    byId("facts").replaceChildren(...facts(job));
    byId("returns").replaceChildren(returns(job));
    if (!job.finished) setTimeout(() => read().catch((error) => say(error.message)), POLL_MS);
  };
  await read();
});
