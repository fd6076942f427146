// The browser simulator: a feature phone that talks to /simulator/api (which
// adds the server's tokens), the SMS inbox of its number, a session log, and
// a recorder that saves the session as a scenario file for `ussd-sim run`.
(function () {
  "use strict";
  const SIM = window.SIM;
  const $ = (id) => document.getElementById(id);
  const state = { session: null, code: SIM.code, text: "", hops: 0, inbox: [], recording: null,
                  sessionHops: 0, last: "" };

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
    $("status").textContent = active ? "in session " + state.session.slice(0, 8) : "no session";
    $("screen").classList.toggle("ended", !active);
    if (!active) {
      state.session = null;
      $("entry").value = SIM.code;
    } else {
      $("entry").value = "";
    }
  }

  function logHop(sent, reply) {
    state.hops += 1;
    const row = document.createElement("tr");
    const over = reply.length === null || reply.length > reply.limit;
    const size = reply.length === null ? "not GSM-7" : reply.length + "/" + reply.limit;
    for (const [text, cls] of [[state.hops, ""], [sent, ""], [reply.body, "reply"],
                               [size + (over ? " over the limit" : ""), over ? "over" : ""],
                               [reply.ms, ""]]) {
      const td = document.createElement("td");
      td.textContent = text;
      if (cls) td.className = cls;
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
    state.last = reply.body;
    show(reply);
    logHop(dialled, reply);
    setSession(!reply.end);
    const step = record({ kind: "dial", value: dialled, reply: reply.body });
    await refreshInbox(step);
  }

  async function send(typed) {
    showError("");
    const text = state.text === "" ? typed : state.text + "*" + typed;
    const reply = await call("/ussd", { msisdn: msisdn(), session: state.session, code: state.code,
                                        text: text, dialect: dialect() });
    state.text = text;
    state.sessionHops += 1;
    state.last = reply.body;
    show(reply);
    logHop(typed, reply);
    setSession(!reply.end);
    const step = record({ kind: "input", value: typed, reply: reply.body });
    await refreshInbox(step);
  }

  async function end(reason) {
    if (!state.session) { showError("no session to end"); return; }
    await call("/end", { msisdn: msisdn(), session: state.session, code: state.code, reason: reason,
                         text: state.text, hops: state.sessionHops, last: state.last, dialect: dialect() });
    $("screen").textContent = reason === "hangup" ? "(hung up)" : "(the session timed out)";
    logNote(reason === "hangup" ? "hung up" : "the session timed out");
    setSession(false);
    record({ kind: reason });
  }

  function identity(m) { return m.id || [m.sent_at, m.from, m.text].join("|"); }

  async function refreshInbox(step) {
    const number = msisdn();
    const data = await call("/inbox?msisdn=" + encodeURIComponent(number));
    $("inbox-of").textContent = data.msisdn;
    const seen = new Map();
    for (const m of state.inbox) seen.set(identity(m), (seen.get(identity(m)) || 0) + 1);
    const fresh = [];
    for (const m of data.messages) {
      const k = identity(m);
      if (seen.get(k)) seen.set(k, seen.get(k) - 1); else fresh.push(m);
    }
    state.inbox = data.messages;
    if (step && fresh.length) step.received = fresh.map((m) => m.text);
    const list = $("inbox");
    list.textContent = "";
    for (const m of data.messages) {
      const li = document.createElement("li");
      const from = document.createElement("span");
      from.className = "from";
      from.textContent = m.from;
      const at = document.createElement("span");
      at.className = "at";
      at.textContent = " " + (m.sent_at || "");
      li.append(from, at, document.createElement("br"), m.text);
      list.appendChild(li);
    }
    list.scrollTop = list.scrollHeight;
  }

  async function sendSms(text) {
    showError("");
    await call("/sms", { msisdn: msisdn(), text: text });
    logNote("SMS sent: " + text);
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
  $("msisdn").addEventListener("change", guard(async () => {
    state.inbox = [];
    setSession(false);
    await refreshInbox(null);
  }));
  $("record").addEventListener("click", guard(toggleRecord));
  $("save").addEventListener("click", guard(save));
  guard(() => refreshInbox(null))();
  setInterval(() => { if (!document.hidden && !state.recording) guard(() => refreshInbox(null))(); }, 5000);
})();
