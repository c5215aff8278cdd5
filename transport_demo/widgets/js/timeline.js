// The packet lens's timeline: one row per connection and direction, a mark per record.
// Everything a connection carried is put in with textContent or an element's title: never HTML.

const KINDS = ["tcp", "tls", "http", "http2", "sse", "websocket", "quic"];
const KIND_NAMES = {
  tcp: "TCP", tls: "TLS", http: "HTTP", http2: "HTTP/2", sse: "SSE", websocket: "WebSocket",
  quic: "QUIC",
};
const MIN_GAP = 0.8;                             // percent of the track between two marks

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function ms(seconds) {
  return seconds < 1 ? `${(seconds * 1000).toFixed(seconds < 0.01 ? 1 : 0)} ms`
                     : `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
}

function spread(positions) {
  // Records microseconds apart would cover each other: each mark keeps a gap from the one
  // before (forwards), and none passes the end of the track (backwards). Its title says its
  // true time.
  const gap = Math.min(MIN_GAP, 100 / Math.max(1, positions.length));
  const out = [];
  let last = -Infinity;
  for (const p of positions) out.push((last = Math.max(p, last + gap)));
  let limit = 100;
  for (let i = out.length - 1; i >= 0; i--) limit = (out[i] = Math.min(out[i], limit)) - gap;
  return out;
}

function render({ model, el: root }) {
  const box = el("div", "tdt");
  const title = el("div", "tdt-title");
  const controls = el("div", "tdt-controls");
  const select = el("select", "tdt-connection");
  const kindBoxes = {};
  const kindsSpan = el("span", "tdt-kinds");
  for (const kind of KINDS) {
    const label = el("label", "tdt-kind");
    label.dataset.kind = kind;
    const box = el("input");
    box.type = "checkbox";
    box.value = kind;
    box.addEventListener("change", () => {
      model.set("kinds", KINDS.filter((k) => kindBoxes[k].checked));
      model.save_changes();
    });
    kindBoxes[kind] = box;
    label.append(box, el("span", "tdt-swatch"), document.createTextNode(KIND_NAMES[kind]));
    kindsSpan.append(label);
  }
  select.addEventListener("change", () => {
    model.set("connection", Number(select.value));
    model.save_changes();
  });
  const download = el("button", "tdt-download", "Download .pcapng");
  const downloadNote = el("span", "tdt-download-note");
  let asked = 0;
  download.addEventListener("click", () => {
    asked = model.get("file_request") + 1;
    downloadNote.textContent = "preparing…";
    model.set("file_request", asked);
    model.save_changes();
  });
  controls.append(el("span", "", "connection "), select, kindsSpan, download, downloadNote);
  const note = el("div", "tdt-note");
  const rows = el("div", "tdt-rows");
  const axis = el("div", "tdt-axis");
  const count = el("div", "tdt-count");
  const detail = el("pre", "tdt-detail", "Click a mark to see its bytes.");
  box.append(title, controls, note, rows, axis, count, detail);
  root.append(box);

  function fillControls() {
    const connections = model.get("connections");
    const chosen = model.get("connection");
    select.replaceChildren(el("option", "", "all"));
    select.firstChild.value = "0";
    for (const c of connections) {
      const option = el("option", "", c.label);
      option.value = String(c.number);
      select.append(option);
    }
    select.value = String(chosen);
    const kinds = model.get("kinds");
    for (const kind of KINDS) kindBoxes[kind].checked = kinds.includes(kind);
    download.disabled = !model.get("file_name");
  }

  function draw() {
    title.textContent = model.get("title");
    note.textContent = model.get("note");
    fillControls();
    const kinds = model.get("kinds");
    const chosen = model.get("connection");
    const marks = model.get("marks").filter(
      (m) => kinds.includes(m.kind) && (chosen === 0 || m.conn === chosen));
    const span = Math.max(1e-3, ...marks.map((m) => m.t)) * 1.02;
    const start = marks.length ? Math.min(...marks.map((m) => m.t)) : 0;
    const width = Math.max(1e-3, span - start);
    rows.replaceChildren();
    for (const c of model.get("connections")) {
      if (chosen !== 0 && c.number !== chosen) continue;
      for (const up of [true, false]) {
        const row = el("div", "tdt-row");
        row.dataset.conn = String(c.number);
        row.dataset.dir = up ? "up" : "down";
        const label = el("div", "tdt-label", `${c.label} ${up ? "↑ up" : "↓ down"}`);
        label.title = label.textContent;
        const track = el("div", "tdt-track");
        const own = marks.filter((m) => m.conn === c.number && m.up === up);
        const left = spread(own.map((m) => ((m.t - start) / width) * 100));
        own.forEach((m, i) => {
          const mark = el("div", "tdt-mark");
          mark.dataset.kind = m.kind;
          mark.style.left = `${left[i]}%`;
          mark.title = `${ms(m.t)}  ${m.summary}`;
          mark.addEventListener("click", () => {
            for (const old of rows.querySelectorAll(".tdt-mark.tdt-chosen")) {
              old.classList.remove("tdt-chosen");
            }
            mark.classList.add("tdt-chosen");
            detail.textContent = m.detail;
          });
          track.append(mark);
        });
        row.append(label, track);
        rows.append(row);
      }
    }
    axis.replaceChildren(el("div", "tdt-label"));
    const ticks = el("div", "tdt-ticks");
    for (let i = 0; i <= 4; i++) {
      const tick = el("span", "tdt-tick", ms(start + (width * i) / 4));
      tick.style.left = `${i * 25}%`;
      ticks.append(tick);
    }
    axis.append(ticks);
    count.textContent = `${marks.length} of ${model.get("marks").length} records shown` +
      " — hover a mark for its summary, click it for its bytes";
  }

  function fileArrived() {
    const file = model.get("file_data");
    if (!file || file.serial !== asked || !asked) return;
    asked = 0;
    if (file.error) {
      downloadNote.textContent = file.error;
      return;
    }
    const bytes = Uint8Array.from(atob(file.b64), (c) => c.charCodeAt(0));
    const url = URL.createObjectURL(new Blob([bytes], { type: "application/vnd.tcpdump.pcap" }));
    const link = el("a");
    link.href = url;
    link.download = model.get("file_name");
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    downloadNote.textContent = `${bytes.length} bytes: open it in Wireshark`;
  }

  draw();
  for (const name of ["marks", "connections", "kinds", "connection", "note", "title", "file_name"]) {
    model.on(`change:${name}`, draw);
  }
  model.on("change:file_data", fileArrived);
}

export default { render };
