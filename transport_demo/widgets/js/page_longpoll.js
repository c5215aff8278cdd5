// Long polling, as a page does it with fetch: ask; the server holds the answer until it has
// something or the hold ends; take the answer; ask again. Every poll carries last_seq, the
// last event this page has, so nothing is lost between polls. A send is a poll with a text.
function connect(base, show, options) {
  let connectionId = options.connectionId, lastSeq = options.lastSeq, stopped = false;
  let sending = Promise.resolve();               // a send's answer comes before the next poll
  const controller = new AbortController();     // Stop cancels the held poll
  const post = async (body) => {
    const response = await fetch(base + "/poll", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      signal: controller.signal,
    });
    if (!response.ok) throw Object.assign(new Error(`HTTP ${response.status}`), { status: response.status });
    return response.json();
  };
  const take = (answer) => {                     // connected, a batch of messages, or a timeout
    if (answer.type === "connected") connectionId = answer.connection_id;
    for (const event of answer.type === "message" ? answer.messages : [answer]) {
      if (typeof event.seq === "number") lastSeq = Math.max(lastSeq, event.seq);
      show.event(event);
    }
  };
  (async () => {
    let delay = 500;
    while (!stopped) {
      try {
        await sending;
        show.state(connectionId ? "waiting" : "connecting");
        take(await post(connectionId ? { connection_id: connectionId, last_seq: lastSeq } : {}));
        if (delay > 500) show.state("open");
        delay = 500;
      } catch (error) {
        if (stopped) break;
        if (error.status === 404) {             // unpolled too long, the server forgot us
          show.note("notice", "the server no longer knows this connection: starting a new one");
          connectionId = null;
          lastSeq = 0;
          continue;
        }
        show.note("reconnect", `${error.message}: asking again in ${delay} ms`);
        await new Promise((wake) => setTimeout(wake, delay));
        delay = Math.min(delay * 2, 10000);
      }
    }
  })();
  return {
    send: (text) => {
      const answer = post({ connection_id: connectionId, text, last_seq: lastSeq }).then(take);
      sending = answer.catch(() => {});
      return answer;
    },
    close: () => { stopped = true; controller.abort(); },
    readyState: () => (stopped ? "stopped" : "a poll in flight"),
  };
}
