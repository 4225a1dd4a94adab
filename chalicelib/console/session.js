// Screen 2: one session. The frame (name, status, tabs) and the overview tab: connect,
// disconnect, log out, the live QR code, the pairing code, status in words, stats.
import { auth, get, post, enc } from "./api.js";
import { h, clear, field, notice, button, busy, confirmDialog, duration, phoneOf, poller } from "./dom.js";
import { STATUS, statusBadge, errorWords } from "./words.js";
import { sendTab } from "./send.js";
import { webhookTab } from "./webhook.js";
import { proxyTab } from "./proxy.js";
import { eventsTab } from "./events.js";

const TABS = [
  ["overview", "Overview"], ["send", "Send"], ["webhook", "Webhook"], ["proxy", "Proxy"], ["events", "Events"],
];

export function sessionView(root, sid, tab, ctx) {
  const base = `/sessions/${enc(sid)}`;
  const title = h("h1", null, sid);
  const badge = h("span");
  const nav = h("nav", { class: "tabs", "aria-label": "Session sections" },
    TABS.map(([id, label]) => h("a", {
      href: `#/s/${enc(sid)}/${id}`, "aria-current": id === tab ? "page" : null,
    }, label)));
  const body = h("div", { class: "tab-body" });
  clear(root,
    auth.isAdmin() ? h("a", { class: "back", href: "#/" }, "← All sessions") : null,
    h("div", { class: "heading" }, h("div", null, title, h("code", { class: "sid" }, sid)), badge),
    nav, body);

  const header = (session) => { // the whole session, or only {status} from a status poll
    if (session.name !== undefined) title.textContent = session.name;
    clear(badge, statusBadge(h, session.status));
  };
  const sub = { ...ctx, sid, base, header };
  const views = { overview: overviewTab, send: sendTab, webhook: webhookTab, proxy: proxyTab, events: eventsTab };
  const stopTab = (views[tab] || overviewTab)(body, sub);
  // the frame keeps name and status current on every tab
  const stopHeader = poller(async () => {
    try {
      header(await get(base));
    } catch (err) {
      if (err.status === 401) ctx.onUnauthorized();
      if (err.status === 404) clear(body, h("p", { class: "panel" }, `There is no session “${sid}”.`));
    }
  }, 3000);
  return () => { stopTab(); stopHeader(); };
}

function overviewTab(root, { sid, base, header, onUnauthorized }) {
  const message = notice();
  const statusWord = h("p", { class: "status-word" });
  const statusText = h("p", { class: "muted" });
  const errorText = h("p", { class: "problem", hidden: true });
  const connect = button("Connect", () => act("connect", connect, "Connecting…"), { kind: "primary" });
  const disconnect = button("Disconnect", () => act("disconnect", disconnect, "Disconnecting…"));
  const logout = button("Log out", async () => {
    const sure = await confirmDialog("Log out this device?",
      "WhatsApp unlinks it from the phone. To use this session again you will scan a new QR code.", "Log out");
    if (sure) act("logout", logout, "Logging out…");
  }, { kind: "danger" });
  for (const b of [connect, disconnect, logout]) b.hidden = true; // until the first status says which apply

  const qrImage = h("img", { class: "qr-image", alt: "QR code: scan it with WhatsApp on your phone", width: 264, height: 264,
    hidden: true });
  const qrWait = h("p", { class: "muted qr-wait" }, "Waiting for the code…");
  const countdown = h("p", { class: "countdown", "aria-live": "off" });
  const qrPanel = h("section", { class: "panel qr", hidden: true, "aria-labelledby": "qr-title" },
    h("h2", { id: "qr-title" }, "Scan with your phone"),
    h("ol", { class: "steps" },
      h("li", null, "Open WhatsApp on your phone."),
      h("li", null, "Tap Settings (or ⋮) → Linked devices → Link a device."),
      h("li", null, "Point the phone at this code.")),
    h("div", { class: "qr-box" }, qrImage, qrWait), countdown);

  const phone = h("input", { type: "tel", placeholder: "+55 11 91234-5678", autocomplete: "off" });
  const pairMessage = notice();
  const pairCode = h("p", { class: "pair-code", hidden: true, "aria-live": "polite" });
  const pairSubmit = h("button", { type: "submit", class: "btn" }, "Get pairing code");
  const pairForm = h("form", { class: "panel pair", hidden: true, "aria-labelledby": "pair-title" },
    h("h2", { id: "pair-title" }, "Or link with a phone number"),
    field("Phone number", phone, "With the country code. On the phone: Linked devices → Link with phone number."),
    h("div", { class: "actions" }, pairSubmit), pairMessage, pairCode);
  pairForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    pairMessage.hide();
    await busy(pairSubmit, async () => {
      try {
        const answer = await post(`${base}/pairphone`, { phone: phone.value });
        pairCode.textContent = answer.pairing_code;
        pairCode.hidden = false;
      } catch (err) {
        pairMessage.show(err.message);
      }
    }, "Asking WhatsApp…");
  });

  const authenticated = h("section", { class: "panel done", hidden: true, role: "status" });
  const stats = h("dl", { class: "stats" });

  clear(root,
    h("section", { class: "panel" },
      statusWord, statusText, errorText,
      h("div", { class: "actions" }, connect, disconnect, logout), message),
    authenticated, qrPanel, pairForm,
    h("section", { class: "panel", "aria-labelledby": "stats-title" },
      h("h2", { id: "stats-title" }, "Activity"), stats));

  let shownCode = null;
  let expiresAt = null;
  let current = null;

  async function act(action, btn, label) {
    message.hide();
    await busy(btn, async () => {
      try {
        await post(`${base}/${action}`);
        await refresh(); // the status says what happens now
      } catch (err) {
        if (err.status === 401) return onUnauthorized();
        message.show(err.message);
      }
    }, label);
  }

  async function refresh() {
    let status;
    try {
      status = await get(`${base}/status`);
    } catch (err) {
      if (err.status === 401) onUnauthorized();
      return;
    }
    current = status;
    header({ status: status.status });
    render(status);
    if (status.status === "connecting" && status.qr_available) await loadQr();
  }

  function render(s) {
    const [word, text] = STATUS[s.status] || [s.status, ""];
    statusWord.textContent = word;
    statusWord.className = `status-word s-${s.status}`;
    statusText.textContent = text;
    errorText.textContent = s.last_error ? errorWords(s.last_error) : "";
    errorText.hidden = !s.last_error || s.status === "authenticated";
    const online = s.status === "authenticated" || (s.logged_in && s.status === "connected");
    authenticated.hidden = !online;
    authenticated.textContent = online ? `Authenticated as ${phoneOf(s.jid)}` : "";
    const connecting = s.status === "connecting" && !s.logged_in;
    qrPanel.hidden = !connecting;
    pairForm.hidden = !connecting;
    if (!connecting) {
      shownCode = null;
      qrImage.hidden = true;
      qrImage.removeAttribute("src");
      qrWait.hidden = false;
      pairCode.hidden = true;
    } else if (!s.qr_available) {
      qrWait.hidden = false;
    }
    connect.hidden = online || connecting;
    disconnect.hidden = s.status === "disconnected" && s.desired_state === "disconnected";
    logout.hidden = !s.logged_in;
  }

  async function loadQr() {
    let qr;
    try {
      qr = await get(`${base}/qr`);
    } catch {
      return; // between two codes, or just logged in: the next status poll says which
    }
    expiresAt = Date.parse(qr.expires_at);
    if (qr.qr_code !== shownCode && typeof qr.image === "string" && qr.image.startsWith("data:image/png;base64,")) {
      shownCode = qr.qr_code;
      qrImage.src = qr.image;
      qrImage.hidden = false;
      qrWait.hidden = true;
    }
    tick();
  }

  function tick() {
    if (qrPanel.hidden || !expiresAt) { countdown.textContent = ""; return; }
    const left = Math.max(0, Math.round((expiresAt - Date.now()) / 1000));
    countdown.textContent = left > 0 ? `This code changes in ${left} s` : "Getting a new code…";
  }

  async function loadStats() {
    try {
      const s = await get(`${base}/stats`);
      const hooks = Object.entries(s.webhook || {}).filter(([, n]) => n).map(([k, n]) => `${n} ${k}`).join(", ");
      clear(stats,
        [["Messages sent", s.messages_sent], ["Messages received", s.messages_received],
          ["Reconnects", s.reconnects], ["Uptime", s.uptime_seconds === null ? "—" : duration(s.uptime_seconds)],
          ["Webhook deliveries", hooks || "none yet"]].map(([k, v]) => h("div", null, h("dt", null, k), h("dd", null, String(v)))));
    } catch { /* the status poll reports problems */ }
  }

  const stopStatus = poller(refresh, () => (current && current.status === "connecting" ? 700 : 2000));
  const stopStats = poller(loadStats, 5000);
  const clock = setInterval(tick, 1000);
  return () => { stopStatus(); stopStats(); clearInterval(clock); };
}
