// The Node peer: ussd-menu-builder (a popular Node USSD library) in one
// process, sessions in Redis (node-redis), the check-points menu. Each hop does
// the floor's Redis work (GET the session, SET it back with a TTL). A menu is
// built per request: the library keeps a hop's arguments and result on the
// menu object, so one shared menu would mix concurrent hops up.
"use strict";
const http = require("http");
const querystring = require("querystring");
const UssdMenu = require("ussd-menu-builder");
const { createClient } = require("redis");

const redis = createClient({ url: process.env.REDIS_URL || "redis://127.0.0.1:6379/0" });

function menuFor(session) {
  const menu = new UssdMenu();
  menu.sessionConfig({
    start: async (id) => { session.doc = JSON.parse((await redis.get(`node:session:${id}`)) || "{}"); },
    get: async (id, key) => session.doc[key],
    set: async (id, key, value) => { session.doc[key] = value; },
    end: async () => {},
  });
  menu.startState({
    run: () => menu.con("Poin Plus\n1 Cek poin\n4 Bantuan\n5 Bahasa/Language"),
    next: { "1": "points", "00": "__start__" },
  });
  menu.state("points", {
    run: () => menu.con("Poin Anda: 12.500\nHangus berikutnya: 2.000 pada 31-12-2026\n0 Kembali\n00 Menu utama"),
    next: { "0": "__start__", "00": "__start__" },
  });
  return menu;
}

const server = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/healthz") return res.end("ok");
  let body = "";
  req.on("data", (chunk) => { body += chunk; });
  req.on("end", async () => {
    const args = querystring.parse(body);
    const session = { doc: {} };
    const reply = await menuFor(session).run(args);
    session.doc.last_text = args.text;
    await redis.set(`node:session:${args.sessionId}`, JSON.stringify(session.doc), { EX: 180 });
    res.writeHead(200, { "Content-Type": "text/plain" });
    res.end(reply);
  });
});

redis.connect().then(() => server.listen(Number(process.env.PORT), "127.0.0.1"));
