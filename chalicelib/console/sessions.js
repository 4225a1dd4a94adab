// Screen 1 (admin): the sessions table, filters, pagination, create (secrets shown once), delete.
import { get, post, del, enc } from "./api.js";
import { h, clear, field, notice, button, busy, copy, confirmDialog, ago, phoneOf, poller } from "./dom.js";
import { STATUS, WEBHOOK, statusBadge } from "./words.js";

const PAGE = 20;

export function sessionsView(root, { onUnauthorized }) {
  const state = { offset: 0, name: "", status: "" };
  const message = notice();
  const tableBody = h("tbody");
  const pageLabel = h("span", { class: "muted", "aria-live": "polite" });
  const prev = button("Previous", () => { state.offset = Math.max(0, state.offset - PAGE); load(); });
  const next = button("Next", () => { state.offset += PAGE; load(); });

  const nameFilter = h("input", { type: "search", placeholder: "Part of a name", autocomplete: "off" });
  const statusFilter = h("select", null, h("option", { value: "" }, "Any status"),
    Object.entries(STATUS).map(([value, [word]]) => h("option", { value }, word)));
  let typing = null;
  nameFilter.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => { state.name = nameFilter.value.trim(); state.offset = 0; load(); }, 250);
  });
  statusFilter.addEventListener("change", () => { state.status = statusFilter.value; state.offset = 0; load(); });

  const pager = h("div", { class: "pager", hidden: true }, prev, pageLabel, next);
  const created = h("div");
  const createForm = createPanel(created, () => showNewest(), onUnauthorized);
  const newButton = button("New session", () => {
    createForm.hidden = !createForm.hidden;
    newButton.setAttribute("aria-expanded", String(!createForm.hidden));
    if (!createForm.hidden) createForm.querySelector("input").focus();
  }, { kind: "primary", "aria-expanded": "false", "aria-controls": "create-session" });

  clear(root,
    h("div", { class: "heading" }, h("h1", null, "Sessions"), newButton),
    createForm, created,
    h("div", { class: "filters", role: "search" },
      field("Filter by name", nameFilter), field("Filter by status", statusFilter)),
    message,
    h("div", { class: "table-wrap" },
      h("table", { class: "sessions" },
        h("caption", { class: "sr-only" }, "Sessions"),
        h("thead", null, h("tr", null,
          ["Name", "Session id", "Status", "Phone", "Last activity", "Webhook", ""].map(
            (label) => h("th", { scope: "col" }, label)))),
        tableBody)),
    pager);

  // The list is oldest first: a session just created is on the last page, and the filters
  // may hide it. Show it: filters cleared, the last page (with 20+ sessions, page 1 would not).
  async function showNewest() {
    state.name = state.status = nameFilter.value = statusFilter.value = "";
    let answer;
    try {
      answer = await get("/sessions?limit=1");
    } catch (err) {
      if (err.status === 401) return onUnauthorized();
      message.show(err.message);
      return;
    }
    state.offset = Math.max(0, Math.floor((answer.total - 1) / PAGE) * PAGE);
    load();
  }

  async function load() {
    const query = new URLSearchParams({ limit: PAGE, offset: state.offset });
    if (state.name) query.set("name", state.name);
    if (state.status) query.set("status", state.status);
    let answer;
    try {
      answer = await get(`/sessions?${query}`);
    } catch (err) {
      if (err.status === 401) return onUnauthorized();
      message.show(err.message);
      return;
    }
    message.hide();
    render(answer);
  }

  function render(answer) {
    if (answer.sessions.length === 0 && answer.total > 0 && state.offset > 0) {
      state.offset = Math.max(0, state.offset - PAGE);
      load();
      return;
    }
    clear(tableBody, answer.sessions.length ? answer.sessions.map(row) : h("tr", null,
      h("td", { colspan: 7, class: "empty" },
        state.name || state.status ? "No session matches these filters."
          : "No sessions yet. Create one with “New session”.")));
    const first = answer.total ? state.offset + 1 : 0;
    pageLabel.textContent = `${first}–${state.offset + answer.sessions.length} of ${answer.total}`;
    pager.hidden = answer.total <= PAGE && state.offset === 0;
    prev.disabled = state.offset === 0;
    next.disabled = state.offset + answer.sessions.length >= answer.total;
  }

  function row(s) {
    const link = h("a", { href: `#/s/${enc(s.session_id)}` }, s.name);
    const remove = button("Delete", async () => {
      const sure = await confirmDialog(`Delete “${s.name}”?`,
        `Session ${s.session_id} is logged out, its key stops working and its history is removed. This cannot be undone.`,
        `Delete ${s.name}`);
      if (!sure) return;
      await busy(remove, async () => {
        try {
          await del(`/sessions/${enc(s.session_id)}`);
          message.show(`Deleted “${s.name}”.`, "ok");
        } catch (err) {
          message.show(err.message);
        }
        load();
      }, "Deleting…");
    }, { kind: "small danger", "aria-label": `Delete session ${s.name}` });
    return h("tr", null,
      h("td", { "data-label": "Name" }, link),
      h("td", { "data-label": "Session id" }, h("code", null, s.session_id)),
      h("td", { "data-label": "Status" }, statusBadge(h, s.status)),
      h("td", { "data-label": "Phone" }, phoneOf(s.jid) || "—"),
      h("td", { "data-label": "Last activity", title: s.last_activity || "" }, ago(s.last_activity)),
      h("td", { "data-label": "Webhook" },
        h("span", { class: `badge w-${s.webhook.status}` }, WEBHOOK[s.webhook.status] || s.webhook.status)),
      h("td", { class: "row-actions" }, remove));
  }

  const stop = poller(load, 5000);
  return () => { stop(); clearTimeout(typing); };
}

function createPanel(output, onCreated, onUnauthorized) {
  const name = h("input", { type: "text", required: true, maxlength: 100, autocomplete: "off" });
  const url = h("input", { type: "url", placeholder: "https://example.com/hook", autocomplete: "off" });
  const events = h("input", { type: "text", placeholder: "message.*, session.connected", autocomplete: "off" });
  const message = notice();
  const submit = h("button", { type: "submit", class: "btn primary" }, "Create session");
  const form = h("form", { class: "panel", id: "create-session", hidden: true, "aria-label": "New session" },
    h("h2", null, "New session"),
    h("div", { class: "grid" },
      field("Name", name),
      field("Webhook URL (optional)", url, "Where zemeow sends this session's events."),
      field("Webhook events (optional)", events, "Comma-separated patterns; empty means all events.")),
    message,
    h("div", { class: "actions" }, submit));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.hide();
    const body = { name: name.value.trim() };
    if (url.value.trim()) {
      body.webhook = { url: url.value.trim(),
        events: events.value.split(",").map((e) => e.trim()).filter(Boolean) };
    }
    await busy(submit, async () => {
      try {
        const answer = await post("/sessions", body);
        form.reset();
        form.hidden = true;
        showSecrets(output, answer);
        onCreated();
      } catch (err) {
        if (err.status === 401) return onUnauthorized();
        message.show(err.message);
      }
    }, "Creating…");
  });
  return form;
}

export function secretRow(label, value) {
  const btn = button("Copy", () => copy(value, btn), { kind: "small", "aria-label": `Copy ${label}` });
  return h("div", { class: "secret" },
    h("span", { class: "secret-label" }, label),
    h("code", { class: "secret-value", tabindex: "0" }, value), btn);
}

function showSecrets(output, answer) {
  const dismiss = button("I saved them", () => clear(output));
  const panel = h("section", { class: "panel once", role: "alert", "aria-labelledby": "once-title" },
    h("h2", { id: "once-title" }, `Session “${answer.name}” created`),
    h("p", { class: "warn" }, "Copy these now: they will not be shown again."),
    secretRow("Session id", answer.session_id),
    secretRow("API key", answer.api_key),
    answer.webhook_secret ? secretRow("Webhook secret", answer.webhook_secret) : null,
    h("div", { class: "actions" },
      h("a", { class: "btn primary", href: `#/s/${enc(answer.session_id)}` }, "Open the session to connect it"),
      dismiss));
  clear(output, panel);
  panel.scrollIntoView({ block: "nearest" });
}
