// WebSocket, as a page uses it: one connection, messages both ways. The browser never
// reconnects a WebSocket: after a close, only the page's own code can open a new one (here when
// `options.reconnect` is set), and only the server's protocol can resume (this server's:
// ?connection_id=…&last_seq=…). Some closes are final: coming back would be wrong (1000 a normal
// end, 1008 and 1009 the same refusal again, 4000 another socket resumed this connection: the two
// would take it from each other for ever), as notebook 04's reconnect exercise checks.
const FINAL_CLOSES = [1000, 1008, 1009, 4000];
function connect(base, show, options) {
  let connectionId = options.connectionId, lastSeq = options.lastSeq, socket, stopped = false;
  let delay = 500;
  function open() {
    const resume = connectionId
      ? `?connection_id=${encodeURIComponent(connectionId)}&last_seq=${lastSeq}` : "";
    socket = new WebSocket(base.replace(/^http/, "ws") + "/ws" + resume);
    socket.onopen = () => { delay = 500; show.state("open"); };
    socket.onmessage = (message) => {
      const event = JSON.parse(message.data);
      if (event.type === "connected") {
        connectionId = event.connection_id;
        lastSeq = event.last_seq;  // the resume point; 0 when the server started a new connection
      }
      if (typeof event.seq === "number") lastSeq = Math.max(lastSeq, event.seq);
      show.event(event);
    };
    socket.onclose = (close) => {
      if (stopped) return show.state("closed");
      if (!options.reconnect) return show.note("closed", `closed (code ${close.code}): a WebSocket does not reconnect by itself`);
      if (FINAL_CLOSES.includes(close.code)) return show.note("closed", `closed (code ${close.code}): final, the page does not come back`);
      show.note("reconnect", `closed (code ${close.code}): the page reconnects in ${delay} ms`);
      setTimeout(() => stopped || open(), delay * (0.5 + Math.random() / 2));
      delay = Math.min(delay * 2, 10000);
    };
  }
  open();
  return {
    send: (text) => socket.send(JSON.stringify({ message: text })),
    close: () => { stopped = true; socket.close(1000, "Stop pressed"); },
    readyState: () => ["CONNECTING", "OPEN", "CLOSING", "CLOSED"][socket.readyState],
    bufferedAmount: () => socket.bufferedAmount,   // bytes handed to send() not yet on the wire
  };
}
