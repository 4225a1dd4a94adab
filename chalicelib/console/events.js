// Screen 6: the session's events as a live timeline (newest first; the JSON on click).
// Polls GET /sessions/{id}/events?after=<cursor> every 2 s (API Gateway REST cannot stream).
import { get } from "./api.js";
import { h, clear, notice, poller } from "./dom.js";

const KEEP = 200;

export function eventsTab(root, { base, onUnauthorized }) {
  const list = h("ol", { class: "timeline", "aria-live": "polite", "aria-relevant": "additions" });
  const empty = h("p", { class: "muted" }, "No events yet. Connect the session or send a message.");
  const message = notice();
  clear(root, h("section", { class: "panel", "aria-labelledby": "events-title" },
    h("h2", { id: "events-title" }, "Events"),
    h("p", { class: "muted" }, "Newest first, updated every 2 seconds. Select an event to see its JSON."),
    message, empty, list));

  let cursor = null;
  async function load() {
    let answer;
    do {
      try {
        answer = await get(`${base}/events?limit=100${cursor ? `&after=${encodeURIComponent(cursor)}` : ""}`);
      } catch (err) {
        if (err.status === 401) return onUnauthorized();
        message.show(err.message);
        return;
      }
      message.hide();
      cursor = answer.cursor;
      for (const event of answer.events) list.prepend(item(event));
    } while (answer.has_more);
    while (list.children.length > KEEP) list.lastElementChild.remove();
    empty.hidden = list.children.length > 0;
  }

  function item(event) {
    const json = h("pre", { class: "json", hidden: true }, JSON.stringify(event, null, 2));
    const toggle = h("button", { type: "button", class: "event-head", "aria-expanded": "false" },
      h("code", { class: "event-name" }, event.event),
      h("span", { class: "event-summary" }, summary(event)),
      h("time", { datetime: event.timestamp }, new Date(event.timestamp).toLocaleTimeString()));
    toggle.addEventListener("click", () => {
      json.hidden = !json.hidden;
      toggle.setAttribute("aria-expanded", String(!json.hidden));
    });
    return h("li", { class: "event", "data-event": event.event }, toggle, json);
  }

  return poller(load, 2000);
}

function summary(event) {
  const d = event.data || {};
  if (typeof d.text === "string") return d.text.slice(0, 80);
  if (d.message_id) return `message ${d.message_id}`;
  if (d.jid) return d.jid;
  if (d.reason) return String(d.reason);
  if (d.code) return String(d.code);
  return "";
}
