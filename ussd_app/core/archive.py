"""Archiving the old head of a subscriber's append-only list (the points
ledger, the consent log) to JSON-lines files, exactly once, so a
subscriber's memory in Redis stays bounded.

A run writes ``<dir>/<kind>/<run id>.jsonl.part``: one line per entry,
``{"msisdn", "seq", "run", "entry"}`` (``seq``: the entry's place in the
subscriber's list since its first entry), subscriber after subscriber, each
subscriber's entries in order. Per batch of subscribers: read the old heads,
write their lines and fsync, then trim each head with :data:`TRIM`, a script
guarded by the count archived so far (a head is removed once, by one run,
and only as it was read) which records the trim (run, from, to) in the
subscriber's archive record. The part file is then *sealed*: a line stays
only if a recorded trim of its run covers its ``seq`` (so a line whose trim
never happened, a crash or a concurrent run, is dropped: its entry is still
in Redis and is archived again), and the file is renamed to ``.jsonl``. A
run first seals the part files a crashed run left. So every entry ends in
exactly one sealed line, and no entry leaves Redis before its line is on disk.
"""
from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import redis

from ussd_app.core import formats, keys, store
from ussd_app.core.errors import Conflict

TRIMS_KEPT = 16  # trims remembered per subscriber and kind: what sealing a crashed run needs
CHUNK = 500  # entries read per subscriber per pass
LOCK_MS = 120_000

# KEYS[1] the list  KEYS[2] the subscriber's archive record (hash)  KEYS[3..] hashes to drop fields from
# ARGV[1] kind  ARGV[2] entries archived before, as read  ARGV[3] n  ARGV[4] the n-th entry, as read
# ARGV[5] run id  ARGV[6] cutoff (epoch)  ARGV[7] sum of the entries' points
# ARGV[8..] for each of KEYS[3..]: a count, then that many fields
# Removes the first n entries once (1), or nothing if the list or the record
# moved since they were read (0).
TRIM = store.Script("""
local kind = ARGV[1]
local done = tonumber(redis.call('HGET', KEYS[2], kind) or '0')
if done ~= tonumber(ARGV[2]) then return 0 end
local n = tonumber(ARGV[3])
if redis.call('LINDEX', KEYS[1], n - 1) ~= ARGV[4] then return 0 end
redis.call('LTRIM', KEYS[1], n, -1)
local trims = {}
for t in string.gmatch(redis.call('HGET', KEYS[2], kind .. ':trims') or '', '[^,]+') do
  trims[#trims + 1] = t
end
trims[#trims + 1] = ARGV[5] .. ':' .. done .. ':' .. (done + n)
while #trims > TRIMS_KEPT do table.remove(trims, 1) end
redis.call('HSET', KEYS[2], kind, done + n, kind .. ':before', ARGV[6],
  kind .. ':trims', table.concat(trims, ','))
redis.call('HINCRBY', KEYS[2], kind .. ':points', ARGV[7])
local i = 8
for k = 3, #KEYS do
  local count = tonumber(ARGV[i])
  if count > 0 then redis.call('HDEL', KEYS[k], unpack(ARGV, i + 1, i + count)) end
  i = i + count + 1
end
return 1
""".replace("TRIMS_KEPT", str(TRIMS_KEPT)), durable=True)


@dataclass(frozen=True)
class Kind:
    """One archived list: its name, its key, an entry's time, the fields of
    other hashes an archived entry takes with it (``drops``), a record
    elsewhere that leaves with it, written into its line (``attach``: a hash
    and field; only once ``settled`` says so, else the head stops before
    it), and its points."""
    name: str
    key: Callable[[str], str]
    time: Callable[[dict], float]
    drops: Callable[[str, dict], list[tuple[str, str]]] = lambda msisdn, entry: []
    attach: Callable[[str, dict], tuple[str, str] | None] = lambda msisdn, entry: None
    settled: Callable[[dict], dict | None] = lambda record: record
    points: Callable[[dict], int] = lambda entry: 0


@dataclass
class Head:
    """The old head of one subscriber's list, as read: what a run archives."""
    msisdn: str
    done: int  # entries archived before
    raw: list[str]
    entries: list[dict]  # the same, parsed
    attached: dict = field(default_factory=dict)  # index -> ((hash, field), record)

    def cut(self, n: int) -> None:
        self.raw, self.entries = self.raw[:n], self.entries[:n]


def summary(r: redis.Redis, msisdn: str, kind: str) -> dict:
    """What was archived of ``kind``: ``archived`` entries, all older than ``archived_before``."""
    count, before = r.hmget(keys.archive(msisdn), kind, f"{kind}:before")
    return {"archived": int(count or 0),
            "archived_before": formats.iso(float(before)) if before else None}


class Run:
    """One archive run into ``directory`` (see the module's docstring)."""

    def __init__(self, r: redis.Redis, directory: str, now: float):
        self.r, self.dir, self.now = r, Path(directory), now
        self.id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)) + "-" + secrets.token_hex(4)
        self.files: dict[str, object] = {}
        self.clean: dict[str, bool] = {}  # kind -> every trim of this run took

    def __enter__(self) -> Run:
        if not self.r.set(keys.ARCHIVE_LOCK, self.id, nx=True, px=LOCK_MS):
            raise Conflict("another archive run is under way (ussd:archive:lock)")
        return self

    def __exit__(self, *exc) -> None:
        for kind, f in self.files.items():
            f.close()
            seal(self.r, self._part(kind), trusted=self.clean[kind] and exc[0] is None)
        if self.r.get(keys.ARCHIVE_LOCK) == self.id:
            self.r.delete(keys.ARCHIVE_LOCK)

    def _part(self, kind: str) -> Path:
        return self.dir / kind / f"{self.id}.jsonl.part"

    def recover(self, kinds: Iterable[Kind]) -> int:
        """Seal the part files crashed runs left; returns how many."""
        found = 0
        for kind in kinds:
            for part in sorted((self.dir / kind.name).glob("*.jsonl.part")):
                seal(self.r, part)
                found += 1
        return found

    def archive(self, kind: Kind, msisdns: list[str], cutoff: float) -> int:
        """Archive each subscriber's entries of ``kind`` older than ``cutoff``; returns how many."""
        self.r.set(keys.ARCHIVE_LOCK, self.id, xx=True, px=LOCK_MS)
        # Most subscribers have nothing old on a given day: their oldest entry says so.
        oldest = store.batch(self.r, [("LINDEX", kind.key(m), 0) for m in msisdns])
        msisdns = [m for m, item in zip(msisdns, oldest)
                   if item is not None and kind.time(json.loads(item)) < cutoff]
        total = 0
        while msisdns:
            read = store.batch(self.r, [command for m in msisdns for command in (
                ("LRANGE", kind.key(m), 0, CHUNK - 1), ("HGET", keys.archive(m), kind.name))])
            heads = []
            for i, m in enumerate(msisdns):
                raw, entries = read[2 * i], []
                for item in raw:
                    entry = json.loads(item)
                    if kind.time(entry) >= cutoff:
                        break
                    entries.append(entry)
                if entries:
                    heads.append(Head(m, int(read[2 * i + 1] or 0), raw[:len(entries)], entries))
            heads = self._attach(kind, heads)
            if not heads:
                return total
            self._write(kind, heads)
            total += self._trim(kind, heads, cutoff)
            msisdns = [h.msisdn for h in heads if len(h.raw) == CHUNK]  # more to come: another pass
        return total

    def _attach(self, kind: Kind, heads: list[Head]) -> list[Head]:
        """Each head with its entries' attached records, cut before the first
        record that may not leave yet."""
        wanted = [(h, i, ref) for h in heads for i, entry in enumerate(h.entries)
                  if (ref := kind.attach(h.msisdn, entry))]
        if wanted:
            found = store.batch(self.r, [("HGET", key, name) for _, _, (key, name) in wanted])
            for (head, i, ref), raw in zip(wanted, found):
                record = kind.settled(json.loads(raw)) if raw else {}
                if record is None:
                    head.cut(i)
                elif i < len(head.raw):
                    head.attached[i] = (ref, record)
        return [h for h in heads if h.raw]

    def _write(self, kind: Kind, heads: list[Head]) -> None:
        f = self.files.get(kind.name)
        if f is None:
            self._part(kind.name).parent.mkdir(parents=True, exist_ok=True)
            f = self.files[kind.name] = open(self._part(kind.name), "a", encoding="utf-8")
            self.clean[kind.name] = True
        for head in heads:
            for i, entry in enumerate(head.entries):
                line = {"msisdn": head.msisdn, "seq": head.done + i, "run": self.id, "entry": entry}
                if head.attached.get(i, (None, None))[1]:
                    line["attached"] = head.attached[i][1]
                f.write(_line(line))
        f.flush()
        os.fsync(f.fileno())  # on disk before anything leaves Redis

    def _trim(self, kind: Kind, heads: list[Head], cutoff: float) -> int:
        commands = []
        for head in heads:
            drops: dict[str, list[str]] = {}
            for entry in head.entries:
                for key, name in kind.drops(head.msisdn, entry):
                    drops.setdefault(key, []).append(name)
            for i, ((key, name), record) in head.attached.items():
                if i < len(head.raw) and record:
                    drops.setdefault(key, []).append(name)
            args = [kind.name, head.done, len(head.raw), head.raw[-1], self.id, repr(float(cutoff)),
                    sum(kind.points(e) for e in head.entries)]
            for fields in drops.values():
                args += [len(fields), *fields]
            commands.append(TRIM.command([kind.key(head.msisdn), keys.archive(head.msisdn), *drops], args))
        trimmed = 0
        for head, took in zip(heads, store.batch(self.r, commands)):
            if took:
                trimmed += len(head.raw)
            else:
                self.clean[kind.name] = False
        return trimmed


def _line(obj: dict) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n"


def seal(r: redis.Redis, part: Path, trusted: bool = False, batch: int = 1000) -> Path | None:
    """Keep the lines of ``part`` whose trim was recorded, and rename it
    ``.jsonl`` (``trusted``: every trim of its run took, keep it whole)."""
    final = part.with_name(part.name[:-len(".part")])
    if final.exists():  # sealed already; a crash came before the part was removed
        part.unlink()
        return final
    kind = part.parent.name
    if not trusted:
        tmp = part.with_name(part.name[:-len(".part")] + ".tmp")
        kept = 0
        with open(part, encoding="utf-8") as src, open(tmp, "w", encoding="utf-8") as out:
            while True:
                lines = [line for line in (src.readline() for _ in range(batch)) if line.endswith("\n")]
                if not lines:
                    break
                rows = [json.loads(line) for line in lines]
                trims = store.batch(r, [("HGET", keys.archive(row["msisdn"]), f"{kind}:trims")
                                        for row in rows])
                for line, row, trims in zip(lines, rows, trims):
                    if _covered(trims, row["run"], row["seq"]):
                        out.write(line)
                        kept += 1
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, part)
        if not kept:
            part.unlink()
            return None
    if part.stat().st_size == 0:
        part.unlink()
        return None
    os.replace(part, final)
    _fsync_dir(final.parent)
    return final


def _covered(trims: str | None, run: str, seq: int) -> bool:
    for trim in (trims or "").split(","):
        who, _, span = trim.partition(":")
        if who == run:
            start, _, end = span.partition(":")
            if int(start) <= seq < int(end):
                return True
    return False


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read(directory: str, kind: str) -> Iterable[dict]:
    """Every sealed line of ``kind``, oldest run first."""
    for path in sorted((Path(directory) / kind).glob("*.jsonl")):
        with open(path, encoding="utf-8") as f:
            for line in f:
                yield json.loads(line)
