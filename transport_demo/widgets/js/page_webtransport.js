// WebTransport, as a page uses it: a session over HTTP/3 (QUIC, over UDP) to the server's /wt,
// its certificate pinned by the hash GET /webtransport gives (serverCertificateHashes: no CA,
// but ECDSA and valid under 14 days). The server opens one bidirectional stream and writes one
// JSON event per line; the page writes {"message": …} lines. Like a WebSocket it never reconnects
// by itself: the page's code does when `options.reconnect` is set, resuming with last_seq.
const FINAL_CLOSES = [1000, 1008, 1009, 4000];
function unavailable(base) {                     // why this page cannot use it, or ""
  if (!window.isSecureContext) return "not a secure context (plain http: to a LAN address): browsers offer WebTransport only over https: or on 127.0.0.1/localhost";
  if (typeof WebTransport !== "function") return "this browser has no WebTransport (Chromium, Chrome and Edge have one that speaks this server's draft)";
  if (/\/proxy\/(absolute\/)?\d+$/.test(new URL(base).pathname)) return "this page reaches the server through jupyter-server-proxy, which carries TCP (HTTP, WebSocket), not UDP: the page's WebTransport cannot reach the kernel's server. The Python-side WebTransportWidget works here";
  return "";
}
function connect(base, show, options) {
  let connectionId = options.connectionId, lastSeq = options.lastSeq, session, writer, stopped, delay = 500, state;
  async function read(current) {                 // the server's stream: one event per line
    await current.ready;
    state = "OPEN"; delay = 500; show.state("open");
    const { value: stream } = await current.incomingBidirectionalStreams.getReader().read();
    writer = stream.writable.getWriter();
    const lines = stream.readable.pipeThrough(new TextDecoderStream()).getReader();
    for (let buffer = "", end; ;) {
      const { value, done } = await lines.read();
      if (done) return;
      for (buffer += value; (end = buffer.indexOf("\n")) >= 0; buffer = buffer.slice(end + 1)) {
        const event = JSON.parse(buffer.slice(0, end));
        if (event.type === "connected") { connectionId = event.connection_id; lastSeq = event.last_seq; }
        if (typeof event.seq === "number") lastSeq = Math.max(lastSeq, event.seq);
        show.event(event);
      }
    }
  }
  async function open() {
    let end; state = "CONNECTING";
    try {
      const answer = await fetch(base + "/webtransport", { cache: "no-store" });  // asked each time:
      if (answer.status === 404) return show.note("closed", "this server serves no WebTransport");
      const where = await answer.json();          // a restarted server has a new certificate
      const hash = Uint8Array.from(where.cert_sha256.match(/../g), (pair) => parseInt(pair, 16));
      const resume = connectionId ? `?connection_id=${encodeURIComponent(connectionId)}&last_seq=${lastSeq}` : "";
      session = new WebTransport(where.url + resume, { serverCertificateHashes: [{ algorithm: "sha-256", value: hash }] });
      read(session).catch(() => {});             // a failed handshake or a cut: `closed` says which
      end = await session.closed;
    } catch (error) { end = { closeCode: 0, reason: String(error.message || error) }; }
    writer = null; state = "CLOSED";
    const code = end.closeCode ? `code ${end.closeCode}` : end.reason;
    if (stopped) return show.state("closed");
    if (!options.reconnect) return show.note("closed", `closed (${code}): a WebTransport session does not reconnect by itself`);
    if (FINAL_CLOSES.includes(end.closeCode)) return show.note("closed", `closed (${code}): final, the page does not come back`);
    show.note("reconnect", `closed (${code}): the page reconnects in ${delay} ms`);
    setTimeout(() => stopped || open(), delay * (0.5 + Math.random() / 2));
    delay = Math.min(delay * 2, 10000);
  }
  open();
  const line = (text) => new TextEncoder().encode(JSON.stringify({ message: text }) + "\n");
  return {
    send: (text) => (writer ? writer.write(line(text)) : Promise.reject(new Error("no session yet"))),
    close: () => { stopped = true; try { session && session.close({ closeCode: 1000, reason: "Stop pressed" }); } catch (e) { /* closed */ } },
    readyState: () => state,
  };
}
