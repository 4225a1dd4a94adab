// Screen 3: send a text, or an image uploaded from the browser through /media/upload-url,
// and follow the command until WhatsApp's message id comes back.
import { get, post } from "./api.js";
import { h, clear, field, notice, busy } from "./dom.js";
import { COMMAND } from "./words.js";

export function sendTab(root, { base, onUnauthorized }) {
  const to = h("input", { type: "tel", required: true, placeholder: "+55 11 91234-5678", autocomplete: "off" });
  const kind = h("select", null, h("option", { value: "text" }, "Text"), h("option", { value: "image" }, "Image"));
  const text = h("textarea", { rows: 4, maxlength: 4096 });
  const file = h("input", { type: "file", accept: "image/png,image/jpeg,image/webp" });
  const textField = field("Message", text);
  const fileField = field("Image", file, "PNG, JPEG or WebP; the message text becomes its caption.");
  fileField.hidden = true;
  const submit = h("button", { type: "submit", class: "btn primary" }, "Send");
  const message = notice();
  const progress = h("ol", { class: "progress", "aria-live": "polite" });
  const textLabel = textField.querySelector("label");
  kind.addEventListener("change", () => {
    const image = kind.value === "image";
    fileField.hidden = !image;
    file.required = image;
    text.required = !image;
    textLabel.textContent = image ? "Caption (optional)" : "Message";
  });
  text.required = true;

  const form = h("form", { class: "panel", "aria-labelledby": "send-title" },
    h("h2", { id: "send-title" }, "Send a message"),
    h("div", { class: "grid" }, field("To (phone number)", to), field("Type", kind)),
    fileField, textField, message,
    h("div", { class: "actions" }, submit), progress);
  clear(root, form);

  let stopped = false;
  const step = (label) => {
    const item = h("li", null, label);
    progress.append(item);
    return item;
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.hide();
    clear(progress);
    await busy(submit, async () => {
      try {
        const body = { to: to.value.trim(), type: kind.value };
        if (kind.value === "text") {
          body.text = text.value;
        } else {
          body.media_key = await upload(file.files[0], step);
          if (text.value.trim()) body.caption = text.value;
        }
        const accepted = await post(`${base}/messages`, body);
        const item = step(`${COMMAND[accepted.status] || accepted.status} (command ${accepted.command_id})`);
        await follow(accepted.command_id, item);
      } catch (err) {
        if (err.status === 401) return onUnauthorized();
        message.show(err.message);
      }
    }, "Sending…");
  });

  async function upload(chosen, stepOf) {
    if (!chosen) throw new Error("Choose an image first.");
    const item = stepOf(`Uploading ${chosen.name}…`);
    const ticket = await post(`${base}/media/upload-url`, {
      mime_type: chosen.type || "application/octet-stream", size: chosen.size, filename: chosen.name });
    const headers = {};
    for (const [name, value] of Object.entries(ticket.headers || {})) {
      if (name.toLowerCase() !== "content-length") headers[name] = value; // the browser sets it
    }
    let answer;
    try {
      answer = await fetch(ticket.upload_url, { method: "PUT", headers, body: chosen, credentials: "omit",
        referrerPolicy: "no-referrer" });
    } catch {
      throw new Error("The upload to the media bucket failed (is the bucket reachable from this browser?).");
    }
    if (!answer.ok) throw new Error(`The media bucket refused the upload (HTTP ${answer.status}).`);
    item.textContent = `Uploaded ${chosen.name}`;
    return ticket.media_key;
  }

  async function follow(commandId, item) {
    const deadline = Date.now() + 60000;
    while (!stopped && Date.now() < deadline) {
      const cmd = await get(`${base}/commands/${encodeURIComponent(commandId)}`);
      if (cmd.status === "succeeded") {
        const id = (cmd.result && (cmd.result.message_id || cmd.result.id)) || "";
        clear(item, "Sent. WhatsApp message id: ", h("code", { class: "message-id" }, id));
        item.className = "ok";
        return;
      }
      if (cmd.status === "failed") {
        const why = (cmd.error && (cmd.error.message || cmd.error.code)) || "unknown reason";
        item.textContent = `Failed: ${why}`;
        item.className = "error";
        return;
      }
      item.textContent = `${COMMAND[cmd.status] || cmd.status} (command ${commandId})`;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }

  to.focus();
  return () => { stopped = true; };
}
