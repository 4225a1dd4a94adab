// Screen 4: the webhook: URL and event filter, rotate the secret (shown once), send a test
// event (admin), and the deliveries with redeliver (one, or every failed one).
import { auth, get, post, put, enc } from "./api.js";
import { h, clear, field, notice, button, busy, ago, poller } from "./dom.js";
import { secretRow } from "./sessions.js";

export function webhookTab(root, { sid, base, onUnauthorized }) {
  const url = h("input", { type: "url", placeholder: "https://example.com/hook", autocomplete: "off" });
  const events = h("input", { type: "text", placeholder: "message.*, session.connected", autocomplete: "off" });
  const health = h("p", { class: "muted" });
  const message = notice();
  const once = h("div");
  const save = h("button", { type: "submit", class: "btn primary" }, "Save webhook");
  const rotate = button("Rotate secret", () => run(rotate, async () => {
    const answer = await post(`${base}/webhook/rotate-secret`);
    showOnce("New webhook secret", answer.webhook_secret,
      "The previous secret keeps signing for 24 hours so your receiver can switch.");
  }, "Rotating…"));
  const test = button("Send a test event", () => run(test, async () => {
    await post("/webhooks/send", { session_id: sid, event: "webhook.test", data: { from: "console" } });
    message.show("Test event queued: watch the deliveries below.", "ok");
    loadDeliveries();
  }, "Sending…"));
  test.hidden = !auth.isAdmin(); // POST /webhooks/send is an admin route

  const form = h("form", { class: "panel", "aria-labelledby": "hook-title" },
    h("h2", { id: "hook-title" }, "Webhook"), health,
    h("div", { class: "grid" },
      field("URL", url, "Empty removes the webhook."),
      field("Events", events, "Comma-separated patterns such as message.*; empty means all.")),
    message, once,
    h("div", { class: "actions" }, save, rotate, test));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run(save, async () => {
      const hook = url.value.trim()
        ? { url: url.value.trim(), events: events.value.split(",").map((e) => e.trim()).filter(Boolean) }
        : null;
      const answer = await put(base, { webhook: hook });
      fill(answer);
      if (answer.webhook_secret) showOnce("Webhook secret", answer.webhook_secret, "");
      else message.show(hook ? "Webhook saved." : "Webhook removed.", "ok");
    }, "Saving…");
  });

  const rows = h("tbody");
  const redeliverAll = button("Redeliver all failed", () => run(redeliverAll, async () => {
    const answer = await post(`${base}/webhook/redeliver`, { status: "failed" });
    message.show(`${answer.count} failed deliveries queued again.`, "ok");
    loadDeliveries();
  }, "Queuing…"));
  const deliveries = h("section", { class: "panel", "aria-labelledby": "deliveries-title" },
    h("div", { class: "heading" }, h("h2", { id: "deliveries-title" }, "Deliveries"), redeliverAll),
    h("div", { class: "table-wrap" }, h("table", { class: "deliveries" },
      h("thead", null, h("tr", null, ["Event", "Status", "Attempts", "Response", "Latency", "When", ""].map(
        (label) => h("th", { scope: "col" }, label)))),
      rows)));

  clear(root, form, deliveries);

  async function run(btn, task, label) {
    message.hide();
    await busy(btn, async () => {
      try {
        await task();
      } catch (err) {
        if (err.status === 401) return onUnauthorized();
        message.show(err.message);
      }
    }, label);
  }

  function showOnce(label, value, note) {
    clear(once, h("div", { class: "once", role: "alert" },
      h("p", { class: "warn" }, "Copy it now: it will not be shown again. ", note), secretRow(label, value)));
  }

  function fill(session) {
    url.value = session.webhook.url || "";
    events.value = (session.webhook.events || []).join(", ");
    const words = { active: "Deliveries are succeeding.", failing: "Recent deliveries are failing.",
      disabled: "The receiver asked to stop (HTTP 410): save the webhook again to re-enable it.",
      inactive: "No webhook is set." };
    health.textContent = (words[session.webhook.status] || "") +
      (session.webhook.last_sent ? ` Last delivered ${ago(session.webhook.last_sent)}.` : "");
  }

  async function loadDeliveries() {
    let answer;
    try {
      answer = await get(`${base}/webhook/deliveries?limit=20`);
    } catch (err) {
      if (err.status === 401) onUnauthorized();
      return;
    }
    redeliverAll.disabled = !answer.deliveries.some((d) => d.status === "failed");
    clear(rows, answer.deliveries.length ? answer.deliveries.map(row)
      : h("tr", null, h("td", { colspan: 7, class: "empty" }, "No deliveries yet.")));
  }

  function row(d) {
    const again = ["failed", "succeeded", "skipped"].includes(d.status)
      ? button("Redeliver", () => run(again, async () => {
        await post(`${base}/webhook/deliveries/${enc(d.id)}/redeliver`);
        loadDeliveries();
      }, "Queuing…"), { kind: "small", "aria-label": `Redeliver ${d.event}` })
      : null;
    const response = d.http_status ? `HTTP ${d.http_status}` : (d.error || "—");
    return h("tr", { "data-status": d.status, "data-id": d.id },
      h("td", { "data-label": "Event" }, h("code", null, d.event)),
      h("td", { "data-label": "Status" }, h("span", { class: `badge d-${d.status}` }, d.status)),
      h("td", { "data-label": "Attempts" }, String(d.attempt)),
      h("td", { "data-label": "Response", title: d.response_excerpt || "" }, response),
      h("td", { "data-label": "Latency" }, d.latency_ms === null || d.latency_ms === undefined ? "—" : `${d.latency_ms} ms`),
      h("td", { "data-label": "When", title: d.created_at }, ago(d.last_attempt_at || d.created_at)),
      h("td", { class: "row-actions" }, again));
  }

  get(base).then(fill).catch((err) => { if (err.status === 401) onUnauthorized(); });
  return poller(loadDeliveries, 3000);
}
