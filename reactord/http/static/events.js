// Events: the last 100 (GET /api/v1/events?limit=100), then each new one as the master logs it
// (EventSource on /api/v1/live), newest on top. The stream opens before the list is read, and
// rows are kept by id, so nothing logged in between is missed or shown twice. A new filter
// opens a new stream; paused, new events are held and shown on resume.
import { api, byId, h, link, oneLine, say, start, when } from "/ui/static/app.js";

const FIRST = 100;
const MOST_ROWS = 500;

let source = null; // the EventSource
let generation = 0; // bumped by each new filter: answers of an older one are dropped
let paused = false;
let held = []; // events that came while paused (or before the list was read)
let listed = false;
let seen = new Set();

function row(event) {
  const tr = h(
    "tr",
    { dataset: { id: event.id } },
    h("td", {}, h("time", { title: `sent ${when(event.time)}`, text: when(event.received ?? event.time) })),
    h("td", { class: "tag" }, link("event", { id: event.id }, event.tag)),
    h("td", { text: event.source }),
    h("td", { class: "data", title: oneLine(event.data, 2000), text: oneLine(event.data) }),
  );
  return tr;
}

function add(events) {
  const body = byId("events");
  for (const event of events) {
    if (seen.has(event.id)) continue;
    seen.add(event.id);
    body.prepend(row(event));
  }
  while (body.rows.length > MOST_ROWS) {
    seen.delete(body.lastElementChild.dataset.id);
    body.lastElementChild.remove();
  }
}

function state(text, kind) {
  const live = byId("live");
  live.textContent = text;
  live.className = `live live-${kind}`;
}

function showHeld() {
  if (paused) state(`paused: ${held.length} new held`, "paused");
  else state(`live${tag() ? ": " + tag() : ""}`, "on");
}

function tag() {
  return byId("tag").value.trim();
}

async function follow() {
  generation += 1;
  const mine = generation;
  if (source) source.close();
  held = [];
  listed = false;
  seen = new Set();
  byId("events").replaceChildren();
  const query = tag() ? "?" + new URLSearchParams({ tag: tag() }) : "";
  history.replaceState(null, "", "/ui/events" + query);
  source = new EventSource("/api/v1/live" + query);
  source.addEventListener("event", (message) => {
    const event = JSON.parse(message.data);
    if (paused || !listed) held.push(event);
    else add([event]);
    if (paused) showHeld();
  });
  source.addEventListener("dropped", (message) => say(`${message.data} events were dropped: this page fell behind`, "notice"));
  source.addEventListener("open", () => showHeld());
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) {
      state("disconnected: reconnecting…", "off");
      setTimeout(() => mine === generation && follow(), 2000);
    } else state("reconnecting…", "off");
  });
  const params = { limit: FIRST };
  if (tag()) params.tag = tag();
  try {
    const events = await api("/events?" + new URLSearchParams(params));
    if (mine !== generation) return;
    add(events);
    say("");
  } catch (error) {
    say(error.message);
    if (error.status === 400) {
      generation += 1; // a bad glob: no reconnecting until it is changed
      source.close();
      state("not following: fix the filter", "off");
      return;
    }
  }
  listed = true;
  if (!paused) {
    add(held);
    held = [];
  }
}

start("events", () => {
  byId("tag").value = new URLSearchParams(location.search).get("tag") || "";
  byId("filter").addEventListener("submit", (submit) => {
    submit.preventDefault();
    follow();
  });
  byId("pause").addEventListener("click", () => {
    paused = !paused;
    byId("pause").textContent = paused ? "Resume" : "Pause";
    if (!paused && listed) {
      add(held);
      held = [];
    }
    showHeld();
  });
  follow();
});
