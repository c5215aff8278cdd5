
// ---- The widget around openMany: a row per stream with its readyState and when it opened.

function resolveBase(url) {
  const config = document.getElementById("jupyter-config-data");
  const baseUrl = config ? JSON.parse(config.textContent).baseUrl || "/" : "/";
  return new URL(url, new URL(baseUrl, location.href)).href.replace(/\/$/, "");
}

function initialize({ model }) {
  let streams = [], openedMs = [], timer = null;
  const names = (kind) => (kind === "websocket"
    ? ["CONNECTING", "OPEN", "CLOSING", "CLOSED"] : ["CONNECTING", "OPEN", "CLOSED"]);
  const report = () => {
    const kind = model.get("kind");
    model.set("streams", streams.map((stream, i) => ({
      state: names(kind)[stream.readyState], opened_ms: openedMs[i] ?? null })));
    model.save_changes();
  };
  const start = () => {
    if (streams.length) return;
    openedMs = [];
    streams = openMany(resolveBase(model.get("url")), model.get("kind"), model.get("count"),
                       (i, ms) => { openedMs[i] = ms; report(); });
    timer = setInterval(report, 250);
    report();
  };
  const stop = () => {
    for (const stream of streams) stream.close();
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
  const draw = () => {
    const head = document.createElement("tr");
    for (const name of ["stream", "readyState", "opened after"]) {
      const th = document.createElement("th");
      th.textContent = name;
      head.append(th);
    }
    const rows = model.get("streams").map((stream, i) => {
      const row = document.createElement("tr");
      const cells = [String(i + 1), stream.state,
                     stream.opened_ms === null ? "waiting…" : `${stream.opened_ms} ms`];
      for (const text of cells) {
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
  el.append(closeOne, table);
  return () => model.off("change:streams", draw);
}

export default { initialize, render };
