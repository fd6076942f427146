"""The menu graph drawn as SVG on the server (no script, nothing fetched):
screens in layers by their distance from the main menu, each edge labelled
with what the caller types."""
from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass
from xml.sax.saxutils import escape

from ussd_app.core import texts

NODE_H, LAYER_GAP, NODE_GAP, MARGIN = 44, 70, 18, 20
CHAR_W = 7.2  # px per character at the 12 px font below


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
    return text if len(text) <= 24 else text[:23] + "…"


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


def svg(engine, lang: str = texts.DEFAULT) -> str:
    graph = edges(engine)
    rows = layers(engine, graph)
    width_of = {n: max(len(n), len(caption(engine, n, lang))) * CHAR_W + 16 for n in engine.screens}
    row_widths = [sum(width_of[n] for n in row) + NODE_GAP * (len(row) - 1) for row in rows]
    total_w = max(row_widths) + 2 * MARGIN
    box = {}
    for i, row in enumerate(rows):
        x = MARGIN + (total_w - 2 * MARGIN - row_widths[i]) / 2
        y = MARGIN + i * (NODE_H + LAYER_GAP)
        for n in row:
            box[n] = (x, y, width_of[n])
            x += width_of[n] + NODE_GAP
    total_h = MARGIN * 2 + len(rows) * (NODE_H + LAYER_GAP) - LAYER_GAP
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="menu-graph" role="img" '
             f'aria-label="menu graph: {len(engine.screens)} screens, {len(graph)} edges" '
             f'width="{total_w:.0f}" height="{total_h:.0f}" viewBox="0 0 {total_w:.0f} {total_h:.0f}" '
             f'font-family="sans-serif" font-size="12">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
             'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/>'
             '</marker></defs>']
    for e in graph:
        parts.append(_edge(box, e))
    for n, (x, y, w) in box.items():
        main = ' stroke-width="2.5"' if n == engine.main else ""
        end = engine.screens[n].end
        fill = "#fdecea" if end is True else "#eef4fb" if callable(end) else "#ffffff"
        parts.append(f'<g class="screen" data-screen="{escape(n)}"><rect x="{x:.1f}" y="{y:.1f}" '
                     f'width="{w:.1f}" height="{NODE_H}" rx="6" fill="{fill}" stroke="#333"{main}/>'
                     f'<text x="{x + w / 2:.1f}" y="{y + 18:.1f}" text-anchor="middle" '
                     f'font-weight="bold">{escape(n)}</text>'
                     f'<text x="{x + w / 2:.1f}" y="{y + 34:.1f}" text-anchor="middle" fill="#555">'
                     f'{escape(caption(engine, n, lang))}</text></g>')
    parts.append("</svg>")
    return "\n".join(parts)


def _edge(box, e: Edge) -> str:
    sx, sy, sw = box[e.source]
    dx, dy, dw = box[e.dest]
    label = escape(e.label)
    if dy > sy:  # downwards: bottom of the source to the top of the destination
        x1, y1, x2, y2 = sx + sw / 2, sy + NODE_H, dx + dw / 2, dy
        mid = (y1 + y2) / 2
        path = f"M{x1:.1f},{y1:.1f} C{x1:.1f},{mid:.1f} {x2:.1f},{mid:.1f} {x2:.1f},{y2:.1f}"
        lx, ly = (x1 + x2) / 2, mid - 3
        dash = ""
    elif dy == sy:  # across a layer: an arc under both
        x1, x2, y = sx + sw / 2, dx + dw / 2, sy + NODE_H
        path = f"M{x1:.1f},{y:.1f} C{x1:.1f},{y + 40:.1f} {x2:.1f},{y + 40:.1f} {x2:.1f},{y:.1f}"
        lx, ly = (x1 + x2) / 2, y + 40
        dash = ' stroke-dasharray="4 3"'
    else:  # back up: around the right-hand sides
        x1, y1, x2, y2 = sx + sw, sy + NODE_H / 2, dx + dw, dy + NODE_H / 2
        bulge = max(x1, x2) + 30 + abs(y1 - y2) / 6
        path = f"M{x1:.1f},{y1:.1f} C{bulge:.1f},{y1:.1f} {bulge:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
        lx, ly = bulge - 6, (y1 + y2) / 2
        dash = ' stroke-dasharray="4 3"'
    return (f'<g class="edge" data-from="{escape(e.source)}" data-to="{escape(e.dest)}">'
            f'<path d="{path}" fill="none" stroke="#555"{dash} marker-end="url(#arrow)"/>'
            f'<text x="{lx:.1f}" y="{ly:.1f}" text-anchor="middle" fill="#a33">{label}</text></g>')
