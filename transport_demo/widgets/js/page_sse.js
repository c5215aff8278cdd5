// Server-Sent Events, as a page uses them. The browser's EventSource connects, parses the
// stream, and reconnects by itself after a cut, sending Last-Event-ID (the `id:` of the last
// event it saw) so that the server can resume. Sending is an ordinary POST, on another request.
function connect(base, show, options) {
  const resume = options.connectionId
    ? `?connection_id=${encodeURIComponent(options.connectionId)}&last_seq=${options.lastSeq}` : "";
  const source = new EventSource(base + "/sse" + resume);
  let connectionId = options.connectionId;
  source.onopen = () => show.state("open");
  source.onmessage = (message) => {             // each `data:` block the server wrote
    const event = JSON.parse(message.data);
    if (event.type === "connected") connectionId = event.connection_id;
    show.event(event, message.lastEventId);
  };
  source.onerror = () => {                       // an error says little: readyState says more
    if (source.readyState === EventSource.CONNECTING) show.note("reconnect", "stream lost: EventSource retries by itself");
    else show.note("closed", "EventSource gave up for good (an HTTP error, a 204, or not text/event-stream)");
  };
  return {
    send: (text) => fetch(base + "/sse/message", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ connection_id: connectionId, text }),
    }),
    close: () => source.close(),
    readyState: () => ["CONNECTING", "OPEN", "CLOSED"][source.readyState],
  };
}
