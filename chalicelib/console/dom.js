// DOM helpers. Text is only ever set as text (textContent / text nodes): user data such
// as session names, messages and webhook answers can never become markup.

export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "text") el.textContent = String(value);
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  add(el, children);
  return el;
}

export function add(el, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren();
  return add(el, children);
}

let uid = 0;
/** A labelled form field: <label for> + the input (or select / textarea). */
export function field(label, control, hint) {
  const id = control.id || `f${++uid}`;
  control.id = id;
  const hintEl = hint ? h("small", { class: "hint", id: `${id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field" }, h("label", { for: id }, label), control, hintEl);
}

/** A live message region (errors and outcomes are announced to screen readers). */
export function notice() {
  const el = h("p", { class: "notice", role: "status", "aria-live": "polite", hidden: true });
  el.show = (text, kind = "error") => {
    el.textContent = text;
    el.className = `notice ${kind}`;
    el.hidden = !text;
  };
  el.hide = () => { el.hidden = true; el.textContent = ""; };
  return el;
}

export function button(label, onclick, { kind = "", type = "button", ...rest } = {}) {
  return h("button", { type, class: `btn ${kind}`.trim(), onclick, ...rest }, label);
}

/** Run `task` with the button disabled (and a busy label) until it settles. */
export async function busy(btn, task, label) {
  const before = btn.textContent;
  btn.disabled = true;
  if (label) btn.textContent = label;
  try {
    return await task();
  } finally {
    btn.disabled = false;
    btn.textContent = before;
  }
}

export async function copy(text, btn) {
  try {
    await navigator.clipboard.writeText(text);
    btn.textContent = "Copied";
  } catch {
    btn.textContent = "Select and copy";
  }
  setTimeout(() => { btn.textContent = "Copy"; }, 1500);
}

/** A modal confirmation; resolves true when confirmed. */
export function confirmDialog(title, text, confirmLabel, kind = "danger") {
  return new Promise((resolve) => {
    const dialog = h("dialog", { class: "confirm", "aria-labelledby": "confirm-title" });
    const done = (answer) => { dialog.close(); dialog.remove(); resolve(answer); };
    add(dialog, [
      h("h2", { id: "confirm-title" }, title),
      h("p", null, text),
      h("div", { class: "actions" },
        button("Cancel", () => done(false)),
        button(confirmLabel, () => done(true), { kind })),
    ]);
    dialog.addEventListener("cancel", (e) => { e.preventDefault(); done(false); });
    document.body.append(dialog);
    dialog.showModal();
  });
}

export function ago(iso) {
  if (!iso) return "never";
  const seconds = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.floor(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

/** "+5511999990000" from a JID such as "5511999990000:12@s.whatsapp.net". */
export function phoneOf(jid) {
  const match = /^(\d+)[:@]/.exec(jid || "");
  return match ? `+${match[1]}` : (jid || "");
}

/** Call `task` now and again `ms` after each run settles; returns a stop function. */
export function poller(task, ms) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    if (stopped) return;
    try { await task(); } catch { /* the task shows its own errors */ }
    if (!stopped) timer = setTimeout(tick, typeof ms === "function" ? ms() : ms);
  };
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}
