// Part 1: keep a WebSocket open across cuts, resuming where it stopped.
function connect(url) {
  let connectionId = null, lastSeq = 0;
  function open() {
    const socket = new WebSocket(url);          // TODO: resume: ?connection_id=…&last_seq=…
    socket.onmessage = (message) => {
      const event = JSON.parse(message.data);
      if (event.type === "connected") connectionId = event.connection_id;
      if (typeof event.seq === "number") lastSeq = Math.max(lastSeq, event.seq);
    };
    socket.onclose = (close) => {
      // TODO: unless the close was final (1000, 1008, 1009, 4000), wait (backoff with
      // jitter), then open() again.
    };
  }
  open();
}

// Part 2: a stream that needs a one-use ticket in its URL (url + "?ticket=" + ticket).
async function listen(url, getTicket) {
  const source = new EventSource(`${url}?ticket=${encodeURIComponent(await getTicket())}`);
  source.onerror = () => {
    // TODO: once the browser has given up (source.readyState === EventSource.CLOSED),
    // get a fresh ticket and open a new EventSource (after a delay, as in part 1).
  };
}
