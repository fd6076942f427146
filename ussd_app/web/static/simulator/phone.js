// The browser simulator: a feature phone that talks to /simulator/api (which
// adds the server's tokens), the SMS inbox of its number, a session log, and
// a recorder that saves the session as a scenario file for `ussd-sim run`.
(function () {
  "use strict";
  const SIM = window.SIM;
  const $ = (id) => document.getElementById(id);
  const state = { session: null, code: SIM.code, text: "", hops: 0, inbox: [], recording: null,
                  sessionHops: 0, last: "", timeline: [], started: 0, screenAt: 0, lastStep: null,
                  refreshing: Promise.resolve() };

  async function call(path, body) {
    const opts = body === undefined ? {} : {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
    let resp;
    try {
      resp = await fetch(SIM.api + path, opts);
    } catch (e) {
      throw new Error("the server cannot be reached");
    }
    const data = await resp.json().catch(() => ({ error: "the server answered " + resp.status }));
    if (!resp.ok) throw new Error(data.error || "the server answered " + resp.status);
    return data;
  }

  function showError(message) {
    const el = $("error");
    el.textContent = message || "";
    el.hidden = !message;
  }

  function msisdn() { return $("msisdn").value.trim(); }
  function dialect() { return $("dialect").value; }

  function setSession(active) {
    $("status").textContent = active ? "in session " + state.session.slice(0, 8) + " (" + dialect() + ")"
                                     : "no session";
    $("screen").classList.toggle("ended", !active);
    if (!active) {
      state.session = null;
      $("entry").value = SIM.code;
      $("clock").textContent = "";
    } else {
      $("entry").value = "";
    }
  }

  function logHop(sent, reply) {
    state.hops += 1;
    const row = document.createElement("tr");
    const over = reply.length === null || reply.length > reply.limit;
    const size = reply.length === null ? "not GSM-7" : reply.length + "/" + reply.limit;
    for (const [text, cls] of [[state.hops, ""], [sent, "sent"], [reply.body, "reply"],
                               [size + (over ? " over the limit" : ""), over ? "over" : ""],
                               [reply.ms, ""]]) {
      const td = document.createElement("td");
      td.textContent = text;
      if (cls) td.className = cls;
      if (cls === "sent" && reply.sent) td.title = reply.dialect + " sent: " + reply.sent;
      row.appendChild(td);
    }
    $("log").querySelector("tbody").appendChild(row);
  }

  function logNote(note) {
    const row = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = 5;
    td.textContent = note;
    row.appendChild(td);
    $("log").querySelector("tbody").appendChild(row);
  }

  function record(step) {
    state.lastStep = step;
    if (state.recording) {
      state.recording.steps.push(step);
      $("save").disabled = false;
      $("recording").textContent = "recording: " + state.recording.steps.length + " steps";
    }
    return step;
  }

  function show(reply) {
    $("screen").textContent = reply.status === 200 ? reply.screen : "(" + reply.status + ") " + reply.body;
    if (reply.warnings.length) showError(reply.warnings.join("; "));
  }

  async function dial(dialled) {
    showError("");
    const reply = await call("/dial", { msisdn: msisdn(), dialled: dialled, dialect: dialect() });
    state.session = reply.session;
    state.code = reply.code;
    state.text = reply.text;
    state.sessionHops = 1;
    state.last = reply.phone;
    state.started = state.screenAt = Date.now();
    show(reply);
    logHop(dialled, reply);
    setSession(!reply.end);
    const step = record({ kind: "dial", value: dialled, reply: reply.phone });
    await refreshInbox(step);
  }

  async function send(typed) {
    showError("");
    const text = state.text === "" ? typed : state.text + "*" + typed;
    const reply = await call("/ussd", { msisdn: msisdn(), session: state.session, code: state.code,
                                        text: text, dialect: dialect() });
    state.text = text;
    state.sessionHops += 1;
    state.last = reply.phone;
    state.screenAt = Date.now();
    show(reply);
    logHop(typed, reply);
    setSession(!reply.end);
    const step = record({ kind: "input", value: typed, reply: reply.phone });
    await refreshInbox(step);
  }

  async function end(reason) {
    if (!state.session) { showError("no session to end"); return; }
    const ended = await call("/end", { msisdn: msisdn(), session: state.session, code: state.code,
                                       reason: reason, text: state.text, dialect: dialect() });
    $("screen").textContent = reason === "hangup" ? "(hung up)" : "(the session timed out)";
    logNote((reason === "hangup" ? "hung up" : "the session timed out") + ": " +
            (ended.sent ? dialect() + " sent " + ended.path + " " + ended.sent
                        : dialect() + " sends nothing (the session gets no further hop)"));
    setSession(false);
    record({ kind: reason });
  }

  function segmentsOf(text) {
    // the page's estimate for what the subscriber sent (the server counts the ones it sent)
    const gsm = /^[\n\r A-Za-z0-9@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ!"#¤%&'()*+,\-.\/:;<=>?¡ÄÖÑÜ§¿äöñüà^{}\\[~\]|€]*$/;
    const size = gsm.test(text) ? text.length + (text.match(/[\^{}\\[~\]|€]/g) || []).length : text.length;
    const [single, part] = gsm.test(text) ? [160, 153] : [70, 67];
    return size <= single ? 1 : Math.ceil(size / part);
  }

  function identity(m) { return m.id || [m.sent_at, m.from, m.text].join("|"); }

  function refreshInbox(step) {
    // one refresh at a time: the timer and a hop may both ask for one
    state.refreshing = state.refreshing.then(() => loadInbox(step), () => loadInbox(step));
    return state.refreshing;
  }

  async function loadInbox(step) {
    const number = msisdn();
    const data = await call("/inbox?msisdn=" + encodeURIComponent(number));
    if (number !== msisdn()) return;
    $("inbox-of").textContent = data.msisdn;
    const seen = new Map();
    for (const m of state.inbox) seen.set(identity(m), (seen.get(identity(m)) || 0) + 1);
    const fresh = [];
    for (const m of data.messages) {
      const k = identity(m);
      if (seen.get(k)) seen.set(k, seen.get(k) - 1); else fresh.push(m);
    }
    state.inbox = data.messages;
    if (step && fresh.length) step.received = (step.received || []).concat(fresh.map((m) => m.text));
    if (fresh.length || !state.timeline.length) {
      state.timeline = state.timeline.concat(fresh);
      drawInbox();
    }
  }

  function drawInbox() {
    const list = $("inbox");
    list.textContent = "";
    for (const m of state.timeline) {
      const li = document.createElement("li");
      const from = document.createElement("span");
      from.className = "from";
      const at = document.createElement("span");
      at.className = "at";
      at.textContent = " " + (m.sent_at || "");
      const parts = document.createElement("span");
      parts.className = "segments";
      parts.textContent = " · " + m.segments + (m.segments === 1 ? " SMS" : " SMS segments");
      if (m.mine) {
        li.className = "mine";
        from.textContent = "you → " + m.to;
      } else {
        from.textContent = "from " + m.from;
      }
      li.append(from, at, parts, document.createElement("br"), m.text);
      list.appendChild(li);
    }
    list.scrollTop = list.scrollHeight;
  }

  async function sendSms(text) {
    showError("");
    await call("/sms", { msisdn: msisdn(), text: text });
    logNote("SMS sent: " + text);
    state.timeline.push({ mine: true, to: SIM.short_code, text: text, segments: segmentsOf(text),
                          sent_at: new Date().toTimeString().slice(0, 8) });
    drawInbox();
    const step = record({ kind: "sms", value: text });
    await refreshInbox(step);
  }

  async function toggleRecord() {
    if (state.recording) {
      $("record").classList.remove("on");
      $("record").textContent = "Record";
      $("recording").textContent = state.recording.steps.length + " steps recorded";
      $("save").disabled = state.recording.steps.length === 0;
      state.stopped = state.recording;
      state.recording = null;
      return;
    }
    const snapshot = await call("/snapshot", { msisdn: msisdn() });
    state.recording = { snapshot: snapshot, steps: [] };
    if (snapshot.notes && snapshot.notes.length) showError("note: " + snapshot.notes.join("; "));
    $("record").classList.add("on");
    $("record").textContent = "Stop";
    $("save").disabled = true;
    $("recording").textContent = state.session ? "recording: starts at the next dial" : "recording";
    await refreshInbox(null);
  }

  async function save() {
    const rec = state.recording || state.stopped;
    if (!rec) return;
    const data = await call("/scenario", { snapshot: rec.snapshot, steps: rec.steps, dialect: dialect() });
    const pre = $("scenario");
    pre.textContent = data.yaml;
    pre.hidden = false;
    const link = $("download");
    link.href = URL.createObjectURL(new Blob([data.yaml], { type: "application/x-yaml" }));
    link.download = data.filename;
    link.textContent = "download " + data.filename;
    link.hidden = false;
    link.click();
  }

  function guard(fn) {
    return (...args) => fn(...args).catch((e) => showError(e.message));
  }

  const callOrSend = guard(async () => {
    const value = $("entry").value.trim();
    if (state.session) await send(value);
    else await dial(value || SIM.code);
  });

  $("call").addEventListener("click", callOrSend);
  $("entry").addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); callOrSend(); } });
  $("clear").addEventListener("click", () => { $("entry").value = $("entry").value.slice(0, -1); });
  for (const key of document.querySelectorAll(".key")) {
    key.addEventListener("click", () => { $("entry").value += key.dataset.key; });
  }
  $("hangup").addEventListener("click", guard(() => end("hangup")));
  $("timeout").addEventListener("click", guard(() => end("timeout")));
  $("sms-form").addEventListener("submit", guard(async (e) => {
    e.preventDefault();
    const text = $("sms-text").value.trim();
    if (!text) { showError("type the SMS first"); return; }
    await sendSms(text);
    $("sms-text").value = "";
  }));
  async function changeNumber() {
    state.inbox = [];
    state.timeline = [];
    setSession(false);
    await refreshInbox(null);
  }

  async function fresh() {
    showError("");
    const data = await call("/fresh", {});
    $("msisdn").value = data.msisdn;
    logNote("fresh subscriber " + data.msisdn + ": " + data.points + " points" +
            (data.offers.length ? ", offers " + data.offers.join(", ") : ""));
    await changeNumber();
  }

  function mmss(ms) {
    const s = Math.max(0, Math.ceil(ms / 1000));
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }

  function tick() {
    if (!state.session) return;
    const now = Date.now();
    const session = SIM.session_seconds * 1000 - (now - state.started);
    const screen = SIM.screen_seconds * 1000 - (now - state.screenAt);
    const el = $("clock");
    const up = session <= 0 || screen <= 0;
    el.classList.toggle("up", up);
    el.textContent = up ? "time is up: a gateway would end this session now"
                        : "session " + mmss(session) + " left · this screen " + mmss(screen) + " left";
  }

  $("msisdn").addEventListener("change", guard(changeNumber));
  $("fresh").addEventListener("click", guard(fresh));
  $("dialect").addEventListener("change", () => {
    if (state.session) logNote("dialect changed to " + dialect() + ": the session is left");
    setSession(false);
  });
  $("record").addEventListener("click", guard(toggleRecord));
  $("save").addEventListener("click", guard(save));
  guard(() => refreshInbox(null))();
  // a late SMS (a reward code a worker sends) appears by itself, and belongs to the step before it
  setInterval(() => { if (!document.hidden) guard(() => refreshInbox(state.lastStep))(); }, 2000);
  setInterval(tick, 250);
})();
