// Statuses and error codes in words a person understands.

export const STATUS = {
  disconnected: ["Offline", "Not connected to WhatsApp."],
  connecting: ["Connecting", "Waiting for WhatsApp: scan the QR code or enter the pairing code."],
  connected: ["Connected", "Connected, not logged in yet."],
  authenticated: ["Online", "Logged in and receiving messages."],
  error: ["Problem", "The last connection attempt failed."],
};

export const LAST_ERROR = {
  dial_failed: "Could not reach WhatsApp's servers (network or proxy). zemeow retries by itself.",
  qr_timeout: "Nobody scanned the QR code in time. Press Connect for a new code.",
  logged_out: "The phone unlinked this device. Connect and scan the QR code again.",
  device_missing: "The saved login is gone. Connect and scan the QR code again.",
  client_outdated: "WhatsApp refused this client as outdated. Update zemeow, then connect again.",
  temporary_ban: "WhatsApp has temporarily banned this number. Wait before connecting again.",
  stream_replaced: "This device was opened somewhere else, which closed this connection.",
  connect_failure: "The connection failed. zemeow retries by itself.",
  service_unavailable: "WhatsApp is unavailable right now. zemeow retries by itself.",
  proxy_invalid: "The proxy settings are not usable. Fix them in the Proxy tab.",
  not_connected: "The session was not connected when asked to send.",
};

export const WEBHOOK = {
  active: "healthy",
  failing: "failing",
  disabled: "disabled",
  inactive: "none",
};

export const COMMAND = {
  queued: "Queued: waiting for the runner…",
  running: "Sending…",
  succeeded: "Sent",
  failed: "Failed",
};

export function statusBadge(h, status) {
  const [word] = STATUS[status] || [status];
  return h("span", { class: `badge s-${status}` }, word);
}

export function errorWords(code) {
  return LAST_ERROR[code] || (code ? `Last error: ${code.replaceAll("_", " ")}.` : "");
}
