// The reconnect check (notebook 04, section 7): the student's JavaScript runs in this page against
// the live server, and the check says what happened.
//
// Part 1, WebSocket: three clients (three tabs, say), each started with the student's
// connect(url). The server cuts each of them three times (close 1012, POST /lessons/cut) while it
// publishes numbered messages (POST /lessons/publish), some of them while the client is away.
// For each client the check counts what arrived lost, doubled and out of order on the wire, reads
// the resume point each new socket asked for, and the delay its code chose before reconnecting.
// At the end it resumes each connection itself: the client's socket is closed with 4000
// (superseded), after which a client must not come back.
// Part 2, EventSource: listen(url, getTicket) opens a stream that needs a one-use ticket. The
// stream ends by itself; the browser reconnects with the same URL, so the same, used ticket, gets
// 401 and gives up for good (readyState CLOSED). The student's code must then get a fresh ticket
// and open a new EventSource.
//
// The student's code gets its own WebSocket, EventSource and setTimeout: the browser's own, each
// watched by the check (which URL, what arrived, which delay was asked for).

const DRILL = { clients: 3, cuts: 3, perStep: 2, streams: 3, backWithinMs: 8000 };

const sleep = (ms) => new Promise((wake) => window.setTimeout(wake, ms));

async function until(predicate, ms) {
  const end = performance.now() + ms;
  while (!predicate()) {
    if (performance.now() > end) return false;
    await sleep(20);
  }
  return true;
}

async function post(base, path, body, headers = {}) {
  const response = await fetch(base + path, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`POST ${path}: HTTP ${response.status}`);
  return response.json();
}

// The student's source, evaluated with the given names shadowing the browser's globals.
function compileStudent(source, globals) {
  const names = Object.keys(globals);
  const body = `"use strict";\n${source}\n;return {
    connect: typeof connect === "function" ? connect : null,
    listen: typeof listen === "function" ? listen : null };`;
  return new Function(...names, body)(...names.map((name) => globals[name]));
}

// setTimeout as the student's code sees it: the real one, with each requested delay written down.
function watchedTimer(state) {
  return (callback, ms = 0, ...args) => {
    if (state.over) return 0;                    // the check is over: nothing more runs
    state.timers.push({ ms: Number(ms) || 0, at: performance.now() });
    return window.setTimeout(callback, ms, ...args);
  };
}

function highestInOrder(seqs) {                   // n such that 1..n all arrived
  const seen = new Set(seqs);
  let n = 0;
  while (seen.has(n + 1)) n += 1;
  return n;
}

function range(numbers) {
  return numbers.length ? Math.max(...numbers) - Math.min(...numbers) : 0;
}

// ---- Part 1: WebSocket ------------------------------------------------------------------------

function startClient(source, url) {
  const c = { sockets: [], seqs: [], closes: [], reconnects: [], connected: [], timers: [],
              expected: [], cut: 0, takenOver: false, over: false, firstId: null, error: null };
  c.currentId = () => (c.connected.length ? c.connected.at(-1).id : null);
  class WebSocket extends window.WebSocket {
    constructor(target, protocols) {
      if (c.over) throw new Error("the check is over");
      super(target, protocols);
      const now = performance.now(), last = c.closes.at(-1);
      if (c.sockets.length) {                    // a reconnect: what it asked for, how long it waited
        const query = new URL(String(target), location.href).searchParams;
        const asked = c.timers.filter((t) => last && t.at >= last.at).map((t) => t.ms);
        c.reconnects.push({
          cut: c.cut, takenOver: c.takenOver, code: last ? last.code : null,
          waited: last ? now - last.at : 0, asked: asked.length ? Math.max(...asked) : null,
          connectionId: query.get("connection_id"),
          lastSeq: query.has("last_seq") ? Number(query.get("last_seq")) : null,
          had: highestInOrder(c.seqs),
        });
      }
      c.sockets.push(this);
      this.addEventListener("message", (message) => {
        let event;
        try { event = JSON.parse(message.data); } catch { return; }
        if (event.type === "connected") {
          c.connected.push({ id: event.connection_id, resumed: event.resumed,
                             failed: event.resume_failed, socket: c.sockets.length });
          c.firstId = c.firstId || event.connection_id;
        } else if (typeof event.seq === "number") c.seqs.push(event.seq);
      });
      this.addEventListener("close", (close) => c.closes.push({ code: close.code, at: performance.now() }));
    }
  }
  try {
    const { connect } = compileStudent(source, { WebSocket, setTimeout: watchedTimer(c) });
    if (!connect) c.error = "part 1 is not written yet: function connect(url)";
    else connect(url);
  } catch (error) { c.error = `connect(url) threw: ${error}`; }
  return c;
}

function caughtUp(c) {                           // everything published has arrived, or never will
  const latest = c.connected.at(-1);
  const onFirst = latest && latest.id === c.firstId && latest.socket === c.sockets.length;
  if (latest && latest.socket === c.sockets.length && !onFirst) return true;  // a new connection
  return onFirst && c.expected.every((seq) => c.seqs.includes(seq));
}

async function checkWebSocket(base, source) {
  const url = base.replace(/^http/, "ws") + "/ws";
  const report = { clients: DRILL.clients, cuts: DRILL.cuts, published: 0, lost: [], doubled: [],
                   out_of_order: [], delays_ms: [], problems: [], notes: [] };
  const problem = (text) => { if (!report.problems.includes(text)) report.problems.push(text); };
  const clients = Array.from({ length: DRILL.clients }, () => startClient(source, url));
  const own = [];
  try {
    const broken = clients.find((c) => c.error);
    if (broken) { problem(broken.error); return report; }
    if (!(await until(() => clients.every((c) => c.firstId), 5000))) {
      problem("connect(url) opened no WebSocket to url that got its connected event within 5 s");
      return report;
    }
    const publish = async () => {
      for (const c of clients) {
        for (let i = 0; i < DRILL.perStep; i++) {
          const { seq } = await post(base, "/lessons/publish", { connection_id: c.firstId, text: "drill" });
          c.expected.push(seq);
        }
      }
    };
    await publish();
    await until(() => clients.every(caughtUp), 3000);
    for (let cut = 1; cut <= DRILL.cuts; cut++) {
      for (const c of clients) {
        c.cut = cut;
        await post(base, "/lessons/cut", { connection_id: c.currentId() });
      }
      await publish();                           // while the clients are away: only a resume gets these
      const back = (c) => c.reconnects.some((r) => r.cut === cut) && caughtUp(c);
      await until(() => clients.every(back), DRILL.backWithinMs);
      const gone = clients.flatMap((c, i) => (c.reconnects.some((r) => r.cut === cut) ? [] : [i + 1]));
      if (gone.length) {                         // it will not come back for the next cuts either
        problem(`${gone.length > 1 ? "clients" : "client"} ${gone.join(", ")}: did not reconnect within `
                + `${DRILL.backWithinMs / 1000} s after the server's close `
                + `${clients[gone[0] - 1].closes.at(-1)?.code ?? "(none)"} (cut ${cut} of ${DRILL.cuts})`);
        break;
      }
      await publish();                           // live again
      await until(() => clients.every(caughtUp), 3000);
    }
    // Another socket resumes each connection: the client's is closed with 4000 and must stay closed.
    const longest = Math.max(0, ...clients.flatMap((c) => c.reconnects.map((r) => r.asked ?? r.waited)));
    for (const c of clients) {
      c.takenOver = true;
      const socket = new window.WebSocket(`${url}?connection_id=${encodeURIComponent(c.currentId())}`
                                          + `&last_seq=${Math.max(0, ...c.seqs)}`);
      own.push(socket);
      await new Promise((done) => { socket.onmessage = done; socket.onclose = done; });
    }
    await sleep(Math.min(5000, Math.max(1000, 1.5 * longest)));
    judgeWebSocket(clients, report, problem);
  } catch (error) {
    problem(`the check itself failed: ${error.message || error}`);
  } finally {
    for (const c of clients) {
      c.over = true;
      for (const socket of c.sockets) socket.close(1000, "the check is over");
    }
    for (const socket of own) socket.close(1000, "the check is over");
  }
  return report;
}

function ranges(seqs) {                          // [3, 4, 5, 9] -> "3–5, 9"
  const parts = [];
  for (const seq of seqs) {
    const last = parts.at(-1);
    if (last && seq === last[1] + 1) last[1] = seq;
    else parts.push([seq, seq]);
  }
  return parts.map(([a, b]) => (a === b ? `${a}` : `${a}–${b}`)).join(", ");
}

// What each client got, and what went wrong; the same mistake in several clients is one line.
function judgeWebSocket(clients, report, problem) {
  const found = new Map();                       // problem -> the clients that showed it
  const seen = (i, text) => found.set(text, [...(found.get(text) || []), i + 1]);
  report.published = clients[0].expected.length;
  clients.forEach((c, i) => {
    const counts = new Map();
    for (const seq of c.seqs) counts.set(seq, (counts.get(seq) || 0) + 1);
    const lost = c.expected.filter((seq) => !counts.has(seq));
    const doubled = [...counts].filter(([, n]) => n > 1).map(([seq]) => seq).sort((a, b) => a - b);
    let outOfOrder = 0, highest = 0;
    const arrived = new Set();
    for (const seq of c.seqs) {
      if (!arrived.has(seq) && seq < highest) outOfOrder += 1;
      arrived.add(seq);
      highest = Math.max(highest, seq);
    }
    report.lost.push(lost);
    report.doubled.push(doubled);
    report.out_of_order.push(outOfOrder);
    report.delays_ms.push(c.reconnects.filter((r) => !r.takenOver)
                            .map((r) => Math.round(r.asked ?? r.waited)));
    if (lost.length) seen(i, `lost ${lost.length} of ${c.expected.length} messages (seq ${ranges(lost)})`);
    if (doubled.length) seen(i, `got seq ${ranges(doubled)} twice`);
    if (outOfOrder) seen(i, `got ${outOfOrder} message(s) out of order`);
    const resume = c.reconnects.find((r) => !r.takenOver && (!r.connectionId || r.lastSeq !== r.had));
    if (resume && !resume.connectionId) {
      seen(i, "reconnected without connection_id: the server made a NEW connection and could not "
              + "replay what was published during the cut (resume: ?connection_id=…&last_seq=…)");
    } else if (resume && resume.lastSeq === null) {
      seen(i, "resumed without last_seq: the server cannot know what the client already has");
    } else if (resume && resume.lastSeq < resume.had) {
      seen(i, `resumed from last_seq=${resume.lastSeq} after receiving every seq up to ${resume.had}: `
              + `the server sent ${resume.lastSeq + 1}–${resume.had} again`);
    } else if (resume) {
      seen(i, `resumed from last_seq=${resume.lastSeq} with only 1–${resume.had} received: the rest is skipped`);
    }
    const atOnce = c.reconnects.find((r) => !r.takenOver && (r.asked === null ? r.waited < 20 : r.asked <= 0));
    if (atOnce) {
      seen(i, `reconnected at once after close ${atOnce.code}: wait a random delay first `
              + "(RFC 6455 §7.2.3), or every client hits the restarted server in the same instant");
    }
    const again = c.reconnects.find((r) => r.takenOver);
    if (again && again.code === 4000) {
      seen(i, "reconnected after close 4000 (superseded: another socket resumed its connection); "
              + "the two would take turns for ever: 4000 is final");
    }
    const failed = c.connected.find((event) => event.failed);
    if (failed) seen(i, `asked for a connection the server did not know (resume_failed: ${failed.failed})`);
  });
  for (const [text, who] of found) {
    problem(`${who.length > 1 ? "clients" : "client"} ${who.join(", ")}: ${text}`);
  }
  // A proxy may close the page's socket without passing the server's code on (jupyter-server-proxy
  // does): the page sees 1005, "no status", for a cut and a takeover alike.
  const codes = new Set(clients.flatMap((c) => c.closes.map((close) => close.code)));
  if (!codes.has(4000) && !codes.has(1012) && codes.has(1005)) {
    report.notes.push("the server's close codes did not reach this page: every close arrived as 1005 "
                      + "(no status), as through jupyter-server-proxy; whether 4000 stays final could "
                      + "not be checked here");
  }
  // Jitter: after the same cut, clients that all wait the same time come back together.
  const byCut = [];
  for (let cut = 1; cut <= DRILL.cuts; cut++) {
    const first = clients.map((c) => c.reconnects.find((r) => r.cut === cut && !r.takenOver))
                         .filter(Boolean);
    if (first.length > 1) byCut.push(first);
  }
  const tolerance = (rs) => (rs.every((r) => r.asked !== null) ? 1 : 15);
  if (byCut.length && byCut.every((rs) => range(rs.map((r) => r.asked ?? r.waited)) < tolerance(rs))) {
    const shown = byCut[0].map((r) => Math.round(r.asked ?? r.waited)).join(", ");
    problem(`no jitter: after each cut all ${byCut[0].length} clients waited the same time (${shown} ms), `
            + "so they all come back in the same instant; make each delay partly random (RFC 6455 §7.2.3)");
  }
}

// ---- Part 2: EventSource with a one-use ticket ------------------------------------------------

async function checkEventSource(base, source) {
  const report = { streams: 0, tickets: 0, heard: 0, delays_ms: [], problems: [] };
  const problem = (text) => { if (!report.problems.includes(text)) report.problems.push(text); };
  const s = { sources: [], timers: [], over: false };
  class EventSource extends window.EventSource {
    constructor(url, init) {
      if (s.over) throw new Error("the check is over");
      const now = performance.now(), last = s.sources.at(-1);
      const still = s.sources.some((r) => r.source.readyState !== window.EventSource.CLOSED);
      super(url, init);
      const record = { source: this, at: now, hellos: 0, closedAt: null,
                       ticket: new URL(String(url), location.href).searchParams.get("ticket") };
      if (last && last.closedAt !== null) {
        const asked = s.timers.filter((t) => t.at >= last.closedAt).map((t) => t.ms);
        record.delay = asked.length ? Math.max(...asked) : now - last.closedAt;
      }
      if (!record.ticket) problem("an EventSource without ?ticket= in its URL: the server answers 401");
      else if (s.sources.some((r) => r.ticket === record.ticket)) {
        problem("a new EventSource reused a ticket that was already used: the server answers 401 "
                + "again; ask getTicket() for a fresh one each time");
      }
      if (still) {
        problem("a new EventSource opened while the previous one was still CONNECTING (the browser "
                + "was about to reconnect by itself): wait for readyState CLOSED, or close() the old one");
      }
      s.sources.push(record);
      this.addEventListener("hello", () => { record.hellos += 1; });
      this.addEventListener("error", () => {
        if (this.readyState === window.EventSource.CLOSED && record.closedAt === null) {
          record.closedAt = performance.now();
        }
      });
    }
  }
  const issued = [];
  try {
    const listen = compileStudent(source, { EventSource, setTimeout: watchedTimer(s) }).listen;
    if (!listen) { problem("part 2 is not written yet: function listen(url, getTicket)"); return report; }
    // No session cookie: the stream must depend on the ticket alone, wherever this page is.
    const { token } = await post(base, "/lessons/login", { user: "reconnect-check", cookie: false });
    const getTicket = async () => {
      const { ticket } = await post(base, "/lessons/ticket", {}, { Authorization: `Bearer ${token}` });
      issued.push(ticket);
      return ticket;
    };
    const hellos = () => s.sources.filter((r) => r.hellos > 0).length;  // streams that said hello
    Promise.resolve(listen(base + "/lessons/sse/private", getTicket))
      .catch((error) => problem(`listen(url, getTicket) threw: ${error.message || error}`));
    const started = performance.now();
    const stuck = () => {                      // CLOSED for 4 s and nothing new: it never will
      const last = s.sources.at(-1);
      if (!last) return performance.now() - started > 4000;
      return last.closedAt !== null && performance.now() - last.closedAt > 4000;
    };
    await until(() => hellos() >= DRILL.streams || report.problems.length || stuck(), 10000);
    report.heard = hellos();
  } catch (error) {
    problem(`the check itself failed: ${error.message || error}`);
  } finally {
    s.over = true;
    for (const r of s.sources) r.source.close();
  }
  report.streams = s.sources.length;
  report.tickets = issued.length;
  report.delays_ms = s.sources.filter((r) => r.delay !== undefined).map((r) => Math.round(r.delay));
  const last = s.sources.at(-1);
  if (!s.sources.length && !report.problems.length) problem("listen(url, getTicket) opened no EventSource");
  else if (report.heard < DRILL.streams && last && last.closedAt !== null) {
    problem("after the browser gave up (readyState CLOSED: its own reconnection reused the one-use "
            + "ticket and got 401) nothing opened a new EventSource: get a fresh ticket, open a new one");
  } else if (report.heard < DRILL.streams && !report.problems.length) {
    problem(`only ${report.heard} of ${DRILL.streams} streams said hello within 10 s`);
  }
  return report;
}

// ---- Both parts ---------------------------------------------------------------------------------

// Runs both parts at once against the server at `base` (http://host:port, no trailing slash) and
// returns the report: { passed, problems, notes, websocket: {...}, eventsource: {...} }; a note is
// what the check could not test from where this page is.
async function runReconnectCheck(base, source) {
  const errors = [];
  const onError = (event) => errors.push(String(event.message || event.reason || event));
  window.addEventListener("error", onError);
  window.addEventListener("unhandledrejection", onError);
  let websocket, eventsource;
  try {
    compileStudent(source, {});                  // a syntax error shows here, once
    [websocket, eventsource] = await Promise.all([checkWebSocket(base, source), checkEventSource(base, source)]);
  } catch (error) {
    return { passed: false, problems: [`the code does not run: ${error}`], websocket: null, eventsource: null };
  } finally {
    window.removeEventListener("error", onError);
    window.removeEventListener("unhandledrejection", onError);
  }
  const thrown = errors.filter((e) => !e.includes("the check is over"));  // its own stop
  const problems = [...thrown.map((e) => `your code threw: ${e}`), ...websocket.problems,
                    ...eventsource.problems];
  return { passed: problems.length === 0, problems, notes: websocket.notes, websocket, eventsource };
}
