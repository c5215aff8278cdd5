// Notebook 04, section 7: the reconnect loop, in the browser's own language.
// Load it into the exercise with exercise.load("solutions/reconnect.js"), then Run the check.

// Backoff with jitter (RFC 6455 §7.2.3): the first wait already random, each next one up to twice
// as long, never more than 10 s. Half of each wait is fixed, half random ("equal jitter").
function nextDelay(attempt) {
  const ceiling = Math.min(250 * 2 ** attempt, 10000);
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

// Closes after which coming back is wrong (notebook 03b, the close-code exercise): a normal end, a policy
// violation, a message too big, and 4000: another socket resumed this connection.
const FINAL = new Set([1000, 1008, 1009, 4000]);

// Part 1: keep a WebSocket open across cuts, resuming where it stopped.
function connect(url) {
  let connectionId = null, lastSeq = 0, attempt = 0;
  function open() {
    const resume = connectionId
      ? `?connection_id=${encodeURIComponent(connectionId)}&last_seq=${lastSeq}` : "";
    const socket = new WebSocket(url + resume);
    socket.onmessage = (message) => {
      const event = JSON.parse(message.data);
      if (event.type === "connected") {
        if (!event.resumed) lastSeq = 0;         // a new connection counts from 1 again
        connectionId = event.connection_id;
        attempt = 0;                             // the server took us back: start small again
      }
      if (typeof event.seq === "number") lastSeq = Math.max(lastSeq, event.seq);
    };
    socket.onclose = (close) => {
      if (FINAL.has(close.code)) return;
      setTimeout(open, nextDelay(attempt));
      attempt += 1;
    };
  }
  open();
}

// Part 2: a stream that needs a one-use ticket in its URL. While the browser retries by itself
// (readyState CONNECTING) there is nothing to do; once it has given up (CLOSED), only a new
// EventSource, with a fresh ticket, brings the stream back.
async function listen(url, getTicket, attempt = 0) {
  const ticket = await getTicket();
  const source = new EventSource(`${url}?ticket=${encodeURIComponent(ticket)}`);
  source.onopen = () => { attempt = 0; };
  source.onerror = () => {
    if (source.readyState !== EventSource.CLOSED) return;
    setTimeout(() => listen(url, getTicket, attempt + 1), nextDelay(attempt));
  };
}
