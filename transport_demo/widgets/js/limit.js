
// ---- The widget around openMany: a row per stream with its readyState and when it opened.

function resolveBase(url) {
  const config = document.getElementById("jupyter-config-data");
  const baseUrl = config ? JSON.parse(config.textContent).baseUrl || "/" : "/";
  return new URL(url, new URL(baseUrl, location.href)).href.replace(/\/$/, "");
}

function initialize({ model }) {
  // What each stream did stays in the table after Stop (opened after how long, or how long it
  // waited in vain), so a teardown that runs before anyone looked does not erase it.
  let streams = [], openedMs = [], waitedMs = [], started = 0, timer = null;
  const names = (kind) => (kind === "websocket"
    ? ["CONNECTING", "OPEN", "CLOSING", "CLOSED"] : ["CONNECTING", "OPEN", "CLOSED"]);
  const report = () => {
    const kind = model.get("kind");
    model.set("streams", streams.map((stream, i) => ({
      state: names(kind)[stream.readyState], opened_ms: openedMs[i] ?? null,
      waited_ms: waitedMs[i] ?? null })));
    model.save_changes();
  };
  const start = () => {
    if (streams.length) return;
    openedMs = [];
    waitedMs = [];
    started = performance.now();
    streams = openMany(resolveBase(model.get("url")), model.get("kind"), model.get("count"),
                       (i, ms) => { openedMs[i] = ms; report(); });
    timer = setInterval(report, 250);
    report();
  };
  const stop = () => {
    const now = Math.round(performance.now() - started);
    streams.forEach((stream, i) => { if (openedMs[i] === undefined) waitedMs[i] = now; stream.close(); });
    clearInterval(timer);
    report();
    streams = [];
  };
  const closeFirst = () => {
    const first = streams.find((stream) => stream.readyState === 1);
    if (first) first.close();
    report();
  };
  const onRunning = () => (model.get("running") ? start() : stop());
  model.on("change:running", onRunning);
  model.on("change:close_count", closeFirst);
  onRunning();
  return () => {
    model.off("change:running", onRunning);
    model.off("change:close_count", closeFirst);
    stop();
  };
}

function render({ model, el }) {
  const table = document.createElement("table");
  table.className = "tdl-grid";
  const summary = document.createElement("div");
  summary.className = "tdl-summary";
  const draw = () => {
    const streams = model.get("streams");
    const opened = streams.filter((stream) => stream.opened_ms !== null);
    summary.textContent = streams.length === 0 ? "not started"
      : `${opened.length} of ${streams.length} opened`
        + (opened.length ? `, the last after ${Math.max(...opened.map((s) => s.opened_ms))} ms` : "");
    const head = document.createElement("tr");
    for (const name of ["stream", "readyState", "opened after"]) {
      const th = document.createElement("th");
      th.textContent = name;
      head.append(th);
    }
    const rows = streams.map((stream, i) => {
      const row = document.createElement("tr");
      const when = stream.opened_ms !== null ? `${stream.opened_ms} ms`
        : stream.waited_ms !== null && stream.waited_ms !== undefined
          ? `never: closed after waiting ${stream.waited_ms} ms` : "waiting…";
      for (const text of [String(i + 1), stream.state, when]) {
        const td = document.createElement("td");
        td.textContent = text;
        row.append(td);
      }
      row.children[1].dataset.state = stream.state;
      return row;
    });
    table.replaceChildren(head, ...rows);
  };
  const closeOne = document.createElement("button");
  closeOne.textContent = "Close one";
  closeOne.onclick = () => { model.set("close_count", model.get("close_count") + 1); model.save_changes(); };
  draw();
  model.on("change:streams", draw);
  el.append(closeOne, summary, table);
  return () => model.off("change:streams", draw);
}

export default { initialize, render };
