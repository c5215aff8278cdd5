// Seven streams from one page to one server. Over HTTP/1.1 a browser keeps at most six
// connections open to one scheme, host and port; a seventh request waits until one of them is
// free. An open EventSource holds its connection for as long as it lives, so the seventh
// EventSource stays CONNECTING. WebSockets are counted in a separate, larger pool.
function openMany(base, kind, count, opened) {
  const started = performance.now();
  const streams = [];
  for (let i = 0; i < count; i++) {
    const stream = kind === "websocket"
      ? new WebSocket(base.replace(/^http/, "ws") + "/ws")
      : new EventSource(base + "/sse");
    stream.onopen = () => opened(i, Math.round(performance.now() - started));
    streams.push(stream);
  }
  return streams;
}
