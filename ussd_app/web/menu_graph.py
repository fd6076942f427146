"""The menu graph drawn as SVG on the server (no script, nothing fetched):
screens in layers by their distance from the main menu, each edge labelled
with what the caller types."""
from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass
from xml.sax.saxutils import escape

from ussd_app.core import texts
from ussd_app.ussd.engine import pack

NODE_H, LAYER_GAP, NODE_GAP, MARGIN = 56, 64, 6, 12
CHAR_W = 6.5  # px per character at the 11 px font below
BOLD_W = 7.2  # ... and in bold (a screen's name)
CAPTION_LINE = 15  # characters a caption line holds (two lines at most)


@dataclass(frozen=True)
class Edge:
    source: str
    dest: str
    label: str


def edges(engine) -> list[Edge]:
    """Every edge of the graph with what is typed to follow it."""
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    for s in engine.screens.values():
        for opt in s.options:
            found[(s.name, opt.to)].append(opt.key)
        if s.items:
            found[(s.name, s.item_to)].append("1..n")
        if s.parse:
            found[(s.name, s.parse_to)].append("typed")
    return [Edge(a, b, ",".join(dict.fromkeys(labels))) for (a, b), labels in found.items()]


def caption(engine, name: str, lang: str = texts.DEFAULT) -> str:
    """A screen's text as it starts (for screens whose text is fixed)."""
    body = engine.screens[name].body
    if callable(body):
        return ""
    text = texts.t(lang, body).split("\n")[0]
    return text if len(text) <= 2 * CAPTION_LINE else text[:2 * CAPTION_LINE - 1] + "…"


def caption_lines(text: str) -> list[str]:
    """A caption in (at most two) lines of CAPTION_LINE characters, broken at spaces."""
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > CAPTION_LINE:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    if len(lines) > 2:
        lines = [lines[0], " ".join(lines[1:])]
    return [ln if len(ln) <= CAPTION_LINE else ln[:CAPTION_LINE - 1] + "…" for ln in lines if ln]


def layers(engine, graph: list[Edge]) -> list[list[str]]:
    """Screens by their distance from the main menu (unreachable ones last),
    each layer ordered by where its parents stand, to keep edges short."""
    out_edges = defaultdict(list)
    for e in graph:
        out_edges[e.source].append(e.dest)
    depth = {engine.main: 0}
    queue = deque([engine.main])
    while queue:
        node = queue.popleft()
        for nxt in out_edges[node]:
            if nxt not in depth:
                depth[nxt] = depth[node] + 1
                queue.append(nxt)
    last = max(depth.values(), default=0) + 1
    for name in engine.screens:
        depth.setdefault(name, last)
    rows: list[list[str]] = [[] for _ in range(max(depth.values()) + 1)]
    for name in engine.screens:  # definition order: journeys stay together
        rows[depth[name]].append(name)
    position: dict[str, float] = {}
    parents = defaultdict(list)
    for e in graph:
        parents[e.dest].append(e.source)
    for row in rows:
        first = {n: i for i, n in enumerate(row)}

        def weight(n, first=first):
            placed = [position[p] for p in parents[n] if p in position]
            return sum(placed) / len(placed) if placed else first[n]
        row.sort(key=weight)
        for i, n in enumerate(row):
            position[n] = i
    return [row for row in rows if row]


MAX_WIDTH = 1200  # the picture fits a 1280 px wide window, the page's margins and scroll bar included
ROW_ROOM = MAX_WIDTH - 2 * MARGIN - 36  # room right of the rows for back edges and loops
LOOP = 34  # px a self-loop takes right of its screen


def special(engine, lang: str = texts.DEFAULT) -> list[tuple[str, str, str]]:
    """Screens the machinery shows beside the graph's own: (name, first line, when)."""
    def first(key: str) -> str:
        text = texts.t(lang, key).split("\n")[0]
        return text if len(text) <= 2 * CAPTION_LINE else text[:2 * CAPTION_LINE - 1] + "…"
    return [("resume", first("resume.title"), "a redial after a drop: 1 continues there, 2 restarts"),
            ("blocked", first("points.blocked"), "a blocked account: points and rewards say so"),
            ("error", first("error.unavailable"), "a hop that fails: the session ends")]


def _wrap(rows: list[list[str]], width_of: dict[str, float]) -> list[list[str]]:
    """Each layer in as many rows as it takes to stay within ROW_ROOM."""
    return [line for row in rows for line in pack(row, lambda n: width_of[n] + NODE_GAP, ROW_ROOM)]


def svg(engine, lang: str = texts.DEFAULT) -> str:
    graph = edges(engine)
    layered = layers(engine, graph)
    depth = {n: i for i, row in enumerate(layered) for n in row}
    looped = {e.source for e in graph if e.source == e.dest}
    width_of = {n: _width(n, caption(engine, n, lang)) for n in engine.screens}
    room = {n: width_of[n] + (LOOP if n in looped else 0) for n in engine.screens}
    rows = _wrap(layered, room)
    row_widths = [sum(room[n] for n in row) + NODE_GAP * (len(row) - 1) for row in rows]
    total_w = MAX_WIDTH
    box = {}
    for i, row in enumerate(rows):
        x = MARGIN + (ROW_ROOM - row_widths[i]) / 2
        y = MARGIN + i * (NODE_H + LAYER_GAP)
        for n in row:
            box[n] = (x, y, width_of[n])
            x += room[n] + NODE_GAP
    extra_y = MARGIN + len(rows) * (NODE_H + LAYER_GAP)
    total_h = extra_y + NODE_H + MARGIN + 16
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="menu-graph" role="img" '
             f'aria-label="menu graph: {len(engine.screens)} screens, {len(graph)} edges" '
             f'width="{total_w:.0f}" height="{total_h:.0f}" viewBox="0 0 {total_w:.0f} {total_h:.0f}" '
             f'font-family="sans-serif" font-size="11">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
             'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/>'
             '</marker></defs>']
    for e in graph:
        parts.append(_edge(box, e, back=depth[e.dest] < depth[e.source]))
    for n, (x, y, w) in box.items():
        main = ' stroke-width="2.5"' if n == engine.main else ""
        end = engine.screens[n].end
        fill = "#fdecea" if end is True else "#eef4fb" if callable(end) else "#ffffff"
        parts.append(_node("screen", n, caption(engine, n, lang), x, y, w, fill, main))
    # the machinery's own screens, in a row of their own under the graph
    x = MARGIN
    for name, text, when in special(engine, lang):
        w = _width(name, text)
        parts.append(_node("special", name, text, x, extra_y, w, "#fff8e1", ' stroke-dasharray="2 2"',
                           title=when))
        x += w + NODE_GAP
    parts.append("</svg>")
    return "\n".join(parts)


def _width(name: str, text: str) -> float:
    return max([len(name) * BOLD_W, *(len(line) * CHAR_W for line in caption_lines(text))]) + 12


def _node(cls: str, name: str, text: str, x: float, y: float, w: float, fill: str, extra: str = "",
          title: str | None = None) -> str:
    tip = f"<title>{escape(title)}</title>" if title else f"<title>{escape(text)}</title>" if text else ""
    return (f'<g class="{cls}" data-screen="{escape(name)}">{tip}<rect x="{x:.1f}" y="{y:.1f}" '
            f'width="{w:.1f}" height="{NODE_H}" rx="6" fill="{fill}" stroke="#333"{extra}/>'
            f'<text x="{x + w / 2:.1f}" y="{y + 18:.1f}" text-anchor="middle" '
            f'font-weight="bold">{escape(name)}</text>'
            + "".join(f'<text x="{x + w / 2:.1f}" y="{y + 32 + 13 * i:.1f}" text-anchor="middle" '
                      f'fill="#555">{escape(line)}</text>' for i, line in enumerate(caption_lines(text)))
            + "</g>")


def _edge(box, e: Edge, back: bool) -> str:
    """An edge: down to a deeper screen, an arc to one beside it, a loop to
    itself, or (dashed, the only dashed ones) back up to a screen nearer the
    main menu."""
    sx, sy, sw = box[e.source]
    dx, dy, dw = box[e.dest]
    label = escape(e.label)
    anchor = "middle"
    if e.source == e.dest:  # a loop on the right-hand side
        x, top, bottom = sx + sw, sy + 10, sy + NODE_H - 10
        path = (f"M{x:.1f},{top:.1f} C{x + LOOP:.1f},{top - 8:.1f} {x + LOOP:.1f},{bottom + 8:.1f} "
                f"{x:.1f},{bottom:.1f}")
        lx, ly, anchor = x + LOOP - 4, sy + NODE_H / 2 + 4, "start"
    elif back:  # back up: around the right-hand sides
        x1, y1, x2, y2 = sx + sw, sy + NODE_H / 2, dx + dw, dy + NODE_H / 2
        bulge = max(x1, x2) + 30 + min(60.0, abs(y1 - y2) / 8)
        path = f"M{x1:.1f},{y1:.1f} C{bulge:.1f},{y1:.1f} {bulge:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
        lx, ly = bulge - 6, (y1 + y2) / 2
    elif dy > sy:  # down: bottom of the source to the top of the destination
        x1, y1, x2, y2 = sx + sw / 2, sy + NODE_H, dx + dw / 2, dy
        mid = (y1 + y2) / 2
        path = f"M{x1:.1f},{y1:.1f} C{x1:.1f},{mid:.1f} {x2:.1f},{mid:.1f} {x2:.1f},{y2:.1f}"
        lx, ly = (x1 + x2) / 2, mid - 3
    elif dy == sy:  # across a row: an arc under both
        x1, x2, y = sx + sw / 2, dx + dw / 2, sy + NODE_H
        path = f"M{x1:.1f},{y:.1f} C{x1:.1f},{y + 40:.1f} {x2:.1f},{y + 40:.1f} {x2:.1f},{y:.1f}"
        lx, ly = (x1 + x2) / 2, y + 34
    else:  # forward to a screen a wrapped row placed higher: top of the source to the bottom of it
        x1, y1, x2, y2 = sx + sw / 2, sy, dx + dw / 2, dy + NODE_H
        mid = (y1 + y2) / 2
        path = f"M{x1:.1f},{y1:.1f} C{x1:.1f},{mid:.1f} {x2:.1f},{mid:.1f} {x2:.1f},{y2:.1f}"
        lx, ly = (x1 + x2) / 2, mid - 3
    dash = ' stroke-dasharray="4 3"' if back else ""
    return (f'<g class="edge{" back" if back else ""}" data-from="{escape(e.source)}" '
            f'data-to="{escape(e.dest)}">'
            f'<path d="{path}" fill="none" stroke="#555"{dash} marker-end="url(#arrow)"/>'
            f'<text x="{lx:.1f}" y="{ly:.1f}" text-anchor="{anchor}" fill="#a33">{label}</text></g>')
