// The console's entry point: sign-in, the hash router and the top bar.
import { auth, get, enc } from "./api.js";
import { h, clear, field, notice, busy } from "./dom.js";
import { sessionsView } from "./sessions.js";
import { sessionView } from "./session.js";

const app = document.getElementById("app");
let stop = () => {};

function signInView(root) {
  const key = h("input", { type: "password", name: "key", autocomplete: "off", spellcheck: "false", required: true });
  const sid = h("input", { type: "text", name: "session_id", autocomplete: "off", spellcheck: "false" });
  const message = notice();
  const submit = h("button", { type: "submit", class: "btn primary" }, "Sign in");
  const form = h("form", { class: "panel narrow", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in"),
    h("p", { class: "muted" }, "Paste the admin key that ", h("code", null, "make run"),
      " printed, or a session's key. It is kept in this tab only and forgotten when you sign out or close it."),
    field("API key", key),
    field("Session id", sid, "Only with a session key: the session it belongs to."),
    message,
    h("div", { class: "actions" }, submit));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.hide();
    await busy(submit, async () => {
      try {
        await signIn(key.value.trim(), sid.value.trim());
        key.value = "";
        route();
      } catch (err) {
        message.show(err.message);
        (err.focus === "sid" ? sid : key).focus();
      }
    }, "Checking…");
  });
  clear(root, form);
  key.focus();
  return () => {};
}

async function signIn(key, sessionId) {
  if (!key) throw Object.assign(new Error("Paste a key first."), { focus: "key" });
  try {
    await get("/sessions?limit=1", { key });
    auth.save(key, "");
    return;
  } catch (err) {
    if (err.status === 401) throw new Error("That key is not valid. Check that you copied all of it.");
    if (err.status !== 403) throw err;
  }
  if (!sessionId) {
    throw Object.assign(new Error("This is a session key. Enter the session id it belongs to as well."),
      { focus: "sid" });
  }
  try {
    await get(`/sessions/${enc(sessionId)}`, { key });
  } catch (err) {
    if (err.status === 403) throw Object.assign(new Error("This key belongs to another session."), { focus: "sid" });
    if (err.status === 404) throw Object.assign(new Error("There is no session with that id."), { focus: "sid" });
    throw err;
  }
  auth.save(key, sessionId);
}

function signOut() {
  auth.forget();
  location.hash = "#/";
  route();
}

function topBar() {
  const who = document.getElementById("who");
  const signedIn = auth.key() !== null;
  who.hidden = !signedIn;
  document.getElementById("who-label").textContent =
    !signedIn ? "" : auth.isAdmin() ? "Admin" : `Session ${auth.scope()}`;
}

function route() {
  stop();
  stop = () => {};
  topBar();
  if (auth.key() === null) {
    stop = signInView(app);
    return;
  }
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  const scope = auth.scope();
  if (scope && (parts[0] !== "s" || parts[1] !== scope)) {
    location.replace(`#/s/${enc(scope)}`);
    return; // the hashchange routes again
  }
  const onUnauthorized = () => {
    auth.forget();
    route();
  };
  if (parts[0] === "s" && parts[1]) {
    stop = sessionView(app, parts[1], parts[2] || "overview", { onUnauthorized });
  } else {
    stop = sessionsView(app, { onUnauthorized });
  }
  app.focus({ preventScroll: true });
}

document.getElementById("sign-out").addEventListener("click", signOut);
window.addEventListener("hashchange", route);
route();
