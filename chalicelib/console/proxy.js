// Screen 5: the session's proxy: set it, remove it, and test it (the outcome's code and message).
import { get, post, put } from "./api.js";
import { h, clear, field, notice, button, busy } from "./dom.js";

export function proxyTab(root, { base, onUnauthorized }) {
  const type = h("select", null, ["http", "https", "socks5"].map((t) => h("option", { value: t }, t.toUpperCase())));
  const host = h("input", { type: "text", autocomplete: "off", placeholder: "proxy.example.com" });
  const port = h("input", { type: "number", min: 1, max: 65535, inputmode: "numeric" });
  const username = h("input", { type: "text", autocomplete: "off" });
  const password = h("input", { type: "password", autocomplete: "new-password" });
  const enabled = h("input", { type: "checkbox", checked: true });
  const current = h("p", { class: "muted" });
  const message = notice();
  const result = h("div", { class: "result", "aria-live": "polite" });
  const save = h("button", { type: "submit", class: "btn primary" }, "Save proxy");
  const test = button("Test proxy", () => run(test, async () => {
    // the form's proxy when one is filled in (test before saving), else the saved one
    const answer = await post(`${base}/proxy/test`, host.value.trim() ? { proxy: formProxy() } : {});
    clear(result, answer.ok
      ? h("p", { class: "notice ok" }, `Works: reached ${answer.target.host}:${answer.target.port} through ` +
        `${answer.proxy.host}:${answer.proxy.port} in ${Math.round(answer.latency_ms)} ms.`)
      : h("p", { class: "notice error" }, h("code", null, answer.error.code), ` ${answer.error.message}`));
  }, "Testing…"));
  const remove = button("Remove proxy", () => run(remove, async () => {
    await put(base, { proxy: null });
    message.show("Proxy removed.", "ok");
    await load();
  }, "Removing…"));

  const form = h("form", { class: "panel", "aria-labelledby": "proxy-title" },
    h("h2", { id: "proxy-title" }, "Proxy"), current,
    h("div", { class: "grid" }, field("Type", type), field("Host", host), field("Port", port),
      field("Username (optional)", username), field("Password (optional)", password, "Kept encrypted; never shown again.")),
    h("label", { class: "check" }, enabled, " Use this proxy"),
    message, h("div", { class: "actions" }, save, test, remove), result);
  function formProxy() {
    const body = { enabled: enabled.checked, type: type.value, host: host.value.trim(), port: Number(port.value) };
    if (username.value) body.username = username.value;
    if (password.value) body.password = password.value;
    return body;
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run(save, async () => {
      await post(`${base}/proxy`, formProxy());
      password.value = "";
      message.show("Proxy saved. The runner applies it on the next connection.", "ok");
      await load();
    }, "Saving…");
  });
  clear(root, form);

  async function run(btn, task, label) {
    message.hide();
    clear(result);
    await busy(btn, async () => {
      try {
        await task();
      } catch (err) {
        if (err.status === 401) return onUnauthorized();
        if (err.code === "proxy_not_configured") {
          message.show("No proxy is saved for this session: fill in the form to test one.");
        } else {
          message.show(err.code ? `${err.message} (${err.code})` : err.message);
        }
      }
    }, label);
  }

  async function load() {
    const p = await get(`${base}/proxy`);
    if (p.type) type.value = p.type;
    host.value = p.host || "";
    port.value = p.port || "";
    username.value = p.username || "";
    enabled.checked = p.enabled || !p.host;
    remove.hidden = !p.host;
    current.textContent = p.host
      ? `${p.enabled ? "In use" : "Saved but off"}: ${p.type}://${p.host}:${p.port}${p.has_password ? " (with a password)" : ""}.`
      : "No proxy: the session connects directly.";
  }
  load().catch((err) => { if (err.status === 401) onUnauthorized(); });
  return () => {};
}
