
// ---- The widget around the page code above: counters, log, controls, and the link to the
// kernel. One client per widget (made in `initialize`, once per model), any number of views.
// Its state goes to the kernel as whole values (counters, the latest log entries): an update
// that waits while a cell runs is never lost, and the newest one wins.

const LOG_LIMIT = 200;
const FLUSH_MS = 200;
const clients = new Map();                       // widget_id -> the client's state, for views

function resolveBase(url) {
  // An absolute URL is used as it is; a relative one (jupyter-server-proxy: "proxy/8000")
  // is relative to Jupyter's base URL, so that it works on a hub as well as locally.
  const config = document.getElementById("jupyter-config-data");
  const baseUrl = config ? JSON.parse(config.textContent).baseUrl || "/" : "/";
  return new URL(url, new URL(baseUrl, location.href)).href.replace(/\/$/, "");
}

/** Why this page's code cannot run here ("" when it can): the page code may define
    `unavailable(base)` (WebTransport does: secure context, browser support, a proxied page). */
function blocked(model) {
  return typeof unavailable === "function" ? unavailable(resolveBase(model.get("url"))) : "";
}

function clock() {
  const now = new Date();
  return now.toTimeString().slice(0, 8) + "." + String(now.getMilliseconds()).padStart(3, "0");
}

function initialize({ model }) {
  const zero = { messages: 0, heartbeats: 0, timeouts: 0, reconnects: 0, duplicates: 0,
                 gaps: 0, errors: 0 };
  const c = { handle: null, connectionId: null, lastSeq: 0, counters: { ...zero }, log: [],
              logged: 0, status: "idle", lost: false, dirty: true, sending: false };
  clients.set(model.get("widget_id"), c);
  c.unavailable = blocked(model);

  function log(entry) {
    c.log.push({ t: clock(), ...entry });
    c.logged += 1;
    if (c.log.length > LOG_LIMIT) c.log.splice(0, c.log.length - LOG_LIMIT);
    c.dirty = true;
  }
  const show = {
    event(event, lastEventId) {                  // a server event: seq bookkeeping, then the log
      if (event.type === "connected") {
        if (c.connectionId && event.connection_id !== c.connectionId) {
          log({ type: "notice", text: "a NEW connection: the server did not know the old one", client: true });
        }
        if (!event.resumed) c.lastSeq = 0;
        c.connectionId = event.connection_id;
        log({ type: "connected", text: event.resumed ? "resumed" : "new connection" });
        sendPending();
        return;
      }
      if (typeof event.seq === "number") {
        if (event.seq <= c.lastSeq) { c.counters.duplicates += 1; c.dirty = true; return; }
        if (event.seq > c.lastSeq + 1) {
          c.counters.gaps += 1;
          log({ type: "gap", text: `expected seq ${c.lastSeq + 1}, got ${event.seq}`, client: true });
        }
        c.lastSeq = event.seq;
        c.counters.messages += 1;
      } else if (event.type === "heartbeat") c.counters.heartbeats += 1;
      else if (event.type === "timeout") c.counters.timeouts += 1;
      else if (event.type === "error") c.counters.errors += 1;
      const text = event.message ?? event.reason ?? (event.error ? `${event.error}: ${event.detail}` : "");
      log({ type: event.type, seq: event.seq, text: String(text),
            ...(lastEventId ? { last_event_id: lastEventId } : {}) });
    },
    note(type, text) {                           // what the page's own code noticed
      if (type === "reconnect") {
        if (!c.lost) c.counters.reconnects += 1;
        c.lost = true;
        c.status = "reconnecting";
      }
      if (type === "closed") {                   // given up: Start makes a new one
        c.status = "closed";
        c.handle = null;
      }
      if (type === "error") c.counters.errors += 1;
      log({ type, text, client: true });
    },
    state(status) {
      if (status === "open" && c.lost) { c.lost = false; log({ type: "reconnected", text: "", client: true }); }
      c.status = status;
      c.dirty = true;
    },
  };

  function start() {
    if (c.handle) return;
    if (c.unavailable) {                         // say so (once) and stay unconnected
      if (c.status !== "unavailable") log({ type: "unavailable", text: c.unavailable, client: true });
      c.status = "unavailable";
      c.dirty = true;
      return;
    }
    c.status = "connecting";
    try {
      c.handle = c.last = connect(resolveBase(model.get("url")), show, {
        connectionId: c.connectionId, lastSeq: c.lastSeq, reconnect: model.get("reconnect"),
      });
    } catch (error) { show.note("error", String(error)); c.status = "error"; }
    c.dirty = true;
  }
  function stop() {
    if (!c.handle) return;
    c.handle.close();
    c.handle = null;
    log({ type: "stopped", text: "closed by Stop (or by the notebook's teardown)", client: true });
    c.status = "closed";
    c.dirty = true;
  }
  async function send(text) {
    if (!c.handle) { show.note("error", "not started: press Start"); return; }
    try {
      const response = await c.handle.send(text);
      if (response && response.ok === false) show.note("error", `send refused: HTTP ${response.status}`);
    } catch (error) { show.note("error", "send failed: " + (error.message || error)); }
  }
  async function sendPending() {                 // texts the kernel asked us to send, in order
    if (c.sending || !c.handle || !c.connectionId) return;
    c.sending = true;
    try {
      for (const [id, text] of model.get("outbox")) {
        if (id <= model.get("sent_id")) continue;
        await send(text);
        model.set("sent_id", id);
        c.dirty = true;
      }
    } finally { c.sending = false; }
  }
  c.start = start; c.stop = stop; c.send = send;
  c.setRunning = (running) => { model.set("running", running); model.save_changes(); };
  c.clear = () => { c.log = []; c.dirty = true; };

  const onRunning = () => (model.get("running") ? start() : stop());
  const onClear = () => c.clear();
  model.on("change:running", onRunning);
  model.on("change:start_count", start);
  model.on("change:outbox", sendPending);
  model.on("change:clear_count", onClear);
  const flush = () => {                          // to the kernel (and to every view), batched
    const handle = c.handle || c.last;           // the last client too: it shows CLOSED
    if (handle) {
      c.readyState = handle.readyState ? handle.readyState() : "";
      c.bufferedAmount = handle.bufferedAmount ? handle.bufferedAmount() : 0;
    }
    const shown = { ready_state: c.readyState || "", buffered_amount: c.bufferedAmount || 0 };
    if (!c.dirty && shown.ready_state === model.get("ready_state")
        && shown.buffered_amount === model.get("buffered_amount")) return;
    c.dirty = false;
    model.set({ ...shown, status: c.status, unavailable: c.unavailable, connection_id: c.connectionId || "",
                last_seq: c.lastSeq, counters: { ...c.counters }, log: [...c.log], logged: c.logged });
    model.save_changes();
  };
  const timer = setInterval(flush, FLUSH_MS);
  onRunning();
  return () => {                                 // the widget was closed: leave nothing open
    clearInterval(timer);
    stop();
    model.off("change:running", onRunning);
    model.off("change:start_count", start);
    model.off("change:outbox", sendPending);
    model.off("change:clear_count", onClear);
    clients.delete(model.get("widget_id"));
  };
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;  // text, never HTML: a message is data
  return node;
}

function render({ model, el }) {
  const c = () => clients.get(model.get("widget_id"));
  const root = element("div", "tdb");
  const title = element("div", "tdb-title", model.get("title"));
  const status = element("div", "tdb-status");
  const buttons = element("div", "tdb-row");
  const startButton = element("button", "tdb-start", "Start");
  const stopButton = element("button", "", "Stop");
  const clearButton = element("button", "", "Clear");
  const input = element("input");
  input.placeholder = "a message; Enter sends";
  const sendButton = element("button", "", "Send");
  buttons.append(startButton, stopButton, clearButton, input, sendButton);
  const counters = element("div", "tdb-counters");
  const log = element("div", "tdb-log");
  const why = blocked(model);
  const notice = element("div", "tdb-unavailable", why ? "Cannot run in this page: " + why + "." : "");
  notice.hidden = !why;
  startButton.disabled = Boolean(why);
  root.append(title, notice, status, buttons, counters, log);
  el.append(root);

  startButton.onclick = () => { if (c()) { c().setRunning(true); c().start(); } };
  stopButton.onclick = () => c() && c().setRunning(false);
  clearButton.onclick = () => c() && c().clear();
  const sendField = () => { if (c() && input.value) { c().send(input.value); input.value = ""; } };
  sendButton.onclick = sendField;
  input.onkeydown = (event) => { if (event.key === "Enter") sendField(); };

  function draw() {
    const id = model.get("connection_id");
    status.textContent = `${model.get("status")}` + (id ? ` · ${id}` : "")
      + (model.get("ready_state") ? ` · readyState ${model.get("ready_state")}` : "")
      + (model.get("transport") === "websocket" ? ` · bufferedAmount ${model.get("buffered_amount")}` : "")
      + ` · last seq ${model.get("last_seq")}`;
    status.dataset.status = model.get("status");
    counters.replaceChildren(...Object.entries(model.get("counters")).map(([name, value]) =>
      element("span", "tdb-counter", `${name} ${value}`)));
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.replaceChildren(...model.get("log").map((entry) => {
      const line = element("div", "tdb-entry");
      line.dataset.type = entry.type;
      if (entry.client) line.dataset.origin = "client";
      const seq = entry.seq !== undefined && entry.seq !== null ? ` #${entry.seq}` : "";
      line.append(element("span", "tdb-t", entry.t + " "), element("b", "", entry.type + seq),
                  element("span", "", entry.text ? "  " + entry.text : ""));
      if (entry.last_event_id) {               // what EventSource will send as Last-Event-ID
        const [id, lastSeq] = entry.last_event_id.split(":");
        line.append(element("span", "tdb-t", `  id ${id.slice(0, 8)}…:${lastSeq}`));
      }
      return line;
    }));
    if (atBottom) log.scrollTop = log.scrollHeight;
  }
  draw();
  const shown = ["status", "connection_id", "ready_state", "buffered_amount", "last_seq",
                 "counters", "log"].map((name) => "change:" + name);
  for (const name of shown) model.on(name, draw);
  return () => { for (const name of shown) model.off(name, draw); };
}

export default { initialize, render };
