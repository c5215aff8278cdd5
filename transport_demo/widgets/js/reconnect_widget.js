
// ---- The widget around the check above: the student's code in a text area, a Run button, the
// report. The check runs in `initialize` (once per model, whatever the number of views); its
// report goes to the kernel as one value (`result`), which `check_reconnect(exercise)` prints.

function checkBase(url) {                        // as widget.js: relative to Jupyter's base URL
  const config = document.getElementById("jupyter-config-data");
  const baseUrl = config ? JSON.parse(config.textContent).baseUrl || "/" : "/";
  return new URL(url, new URL(baseUrl, location.href)).href.replace(/\/$/, "");
}

function initialize({ model }) {
  let running = false;
  async function run() {                         // runs when run_count is ahead of done_count
    const asked = model.get("run_count");
    if (running || asked <= model.get("done_count")) return;
    running = true;
    model.set({ status: "running", result: {} });
    model.save_changes();
    let result;
    try {
      result = await runReconnectCheck(checkBase(model.get("url")), model.get("source"));
    } catch (error) {
      result = { passed: false, problems: [`the check could not run: ${error.message || error}`] };
    }
    running = false;
    model.set({ status: "done", result, done_count: asked });
    model.save_changes();
    run();                                       // asked again meanwhile
  }
  model.on("change:run_count", run);
  run();                                         // a run() the kernel asked for before the page was here
  return () => model.off("change:run_count", run);
}

function node(tag, className, text) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== undefined) element.textContent = text;  // text, never HTML
  return element;
}

function summary(result) {                       // one line per client, one for the streams
  const lines = [];
  const ws = result.websocket, es = result.eventsource;
  if (ws) {
    ws.delays_ms.forEach((delays, i) => lines.push(
      `WebSocket client ${i + 1}: lost ${ws.lost[i].length}, doubled ${ws.doubled[i].length}, `
      + `out of order ${ws.out_of_order[i]} (of ${ws.published}); delays chosen `
      + `${delays.length ? delays.join(", ") + " ms" : "none"}`));
  }
  if (es) {
    lines.push(`EventSource: ${es.streams} opened, ${es.tickets} tickets, ${es.heard} said hello; `
               + `delays after CLOSED ${es.delays_ms.length ? es.delays_ms.join(", ") + " ms" : "none"}`);
  }
  return lines;
}

function render({ model, el }) {
  const root = node("div", "tdb");
  const title = node("div", "tdb-title", "Your reconnect code — run in this browser page");
  const code = node("textarea", "tdr-code");
  code.spellcheck = false;
  code.rows = 30;
  const row = node("div", "tdb-row");
  const runButton = node("button", "tdb-start", "Run the check");
  const status = node("div", "tdb-status");
  row.append(runButton, status);
  const verdict = node("div", "tdr-verdict");
  const lines = node("ul", "tdr-lines");
  root.append(title, code, row, verdict, lines);
  el.append(root);

  let typing = null;
  code.value = model.get("source");
  code.oninput = () => {                         // to the kernel, a moment after the last key
    clearTimeout(typing);
    typing = setTimeout(() => { model.set("source", code.value); model.save_changes(); }, 300);
  };
  runButton.onclick = () => {
    clearTimeout(typing);
    model.set({ source: code.value, run_count: model.get("run_count") + 1 });
    model.save_changes();                        // change:run_count runs the check, here too
  };
  const showSource = () => { if (code.value !== model.get("source")) code.value = model.get("source"); };
  function draw() {
    const result = model.get("result") || {};
    status.textContent = model.get("status") === "running" ? "running: the server cuts, publishes, "
      + "cuts again (a few seconds)" : model.get("status");
    runButton.disabled = model.get("status") === "running";
    verdict.dataset.passed = String(result.passed);
    verdict.textContent = result.passed === undefined ? ""
      : result.passed ? "✓ pass" : "✗ not yet";
    lines.replaceChildren(
      ...(result.problems || []).map((text) => node("li", "tdr-problem", text)),
      ...summary(result).map((text) => node("li", "", text)),
      ...(result.notes || []).map((text) => node("li", "tdr-note", "note: " + text)));
  }
  draw();
  model.on("change:source", showSource);
  model.on("change:status change:result", draw);
  return () => {
    model.off("change:source", showSource);
    model.off("change:status change:result", draw);
  };
}

export default { initialize, render };
