// Overview: GET /api/v1/status every 2 s. Events/s is the master's own (its last minute);
// firings/s and failures/s are the change of the counters reactor.fired and actions.failed.*
// between two polls, over the master's uptime between them.
import { api, every, span, start, when } from "/ui/static/app.js";

const POLL_MS = 2000;

function set(testid, value) {
  document.querySelector(`[data-testid="${testid}"]`).textContent = String(value);
}

function failures(counters) {
  let sum = 0;
  for (const [name, value] of Object.entries(counters)) {
    if (name.startsWith("actions.failed.")) sum += value;
  }
  return sum;
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

let previous = null;

function rate(now, name, value) {
  if (!previous || now.uptime <= previous.uptime) return "–";
  return ((value - previous[name]) / (now.uptime - previous.uptime)).toFixed(2);
}

function show(status) {
  const fired = status.counters["reactor.fired"] || 0;
  const failed = failures(status.counters);
  set("minions-up", status.minions.up);
  set("minions-suspect", status.minions.suspect);
  set("minions-down", status.minions.down);
  for (const state of ["accepted", "pending", "rejected", "denied"]) set(`keys-${state}`, status.keys[state] ?? 0);
  set("events-per-second", status.events_per_second.toFixed(2));
  set("events-logged", status.events_logged);
  set("firings-per-second", rate(status, "fired", fired));
  set("rules-loaded", status.rules_loaded);
  set("failures-per-second", rate(status, "failed", failed));
  set("failed-tries", failed);
  set("actions-in-flight", status.actions_in_flight);
  set("dead-letters", status.dead_letters);
  set("version", status.version);
  set("uptime", span(status.uptime));
  set("storage", status.storage.ok ? "ok" : `failing since ${when(status.storage.since)}: ${status.storage.error}`);
  const queue = status.actions;
  set("queue", `${queue.queued} queued, ${queue.running} running${queue.saturated ? " (full: ingest waits)" : ""}`);
  set("database", bytes(status.database_bytes));
  set("finger", status.master_finger);
  set("updated", `updated ${when(Date.now() / 1000).slice(11)}`);
  previous = { uptime: status.uptime, fired, failed };
}

start("overview", () => {
  every(POLL_MS, async () => show(await api("/status")));
});
