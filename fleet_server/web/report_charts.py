"""The monthly report's charts as inline SVG, drawn on the server: the same drawing on the
printed page and in the PDF (WeasyPrint draws SVG itself; no JavaScript anywhere).

Figures hidden by the small-count rule are drawn as grey stubs labelled ``<N`` (N the
minimum), explained by the legend under each chart; every count is written on the chart
as well as drawn, so colour and size are never the only carriers of a figure.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup

from fleet_server.core import i18n

WIDTH = 680
"""px; 180 mm at CSS's 96 px per inch: the width of A4 inside 15 mm margins."""
BLUE = (33, 102, 172)
LINE = "#b35806"
TEXT = "#1b1f24"
HIDDEN = "#dcdfe3"
"""Hidden figures' fill: flat grey with the ``<N`` label (a hatch pattern cost WeasyPrint a pattern paint per cell)."""


def _luminance(rgb: Sequence[float]) -> float:
    def channel(c: float) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _contrast(a: Sequence[float], b: Sequence[float]) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def cell_colours(share: float) -> tuple[str, str]:
    """(fill, text) for a heatmap cell at ``share`` (0..1) of the busiest cell; the text colour is
    whichever of black and white contrasts more with the fill: at least 4.58:1 at any fill (the
    worst case, where both are equal, is sqrt(21)), which near-black text would not reach."""
    t = 0.08 + 0.92 * max(0.0, min(1.0, share))
    fill = tuple(255 * (1 - t) + c * t for c in BLUE)
    black, white = (0, 0, 0), (255, 255, 255)
    text = "#ffffff" if _contrast(fill, white) > _contrast(fill, black) else "#000000"
    r, g, b = (round(c) for c in fill)
    return f"#{r:02x}{g:02x}{b:02x}", text


def _t(x: float, y: float, text: str, *, size: int = 9, anchor: str = "middle", fill: str = TEXT,
       weight: str = "normal") -> Markup:
    return Markup('<text x="%.1f" y="%.1f" font-size="%d" text-anchor="%s" fill="%s" font-weight="%s">%s</text>') % (
        x, y, size, anchor, fill, weight, text)


def trend_svg(trend: Sequence[dict], minimum: int, granularity: str) -> Markup:
    """Responses per day or week as bars (count on top), satisfaction as a line with squares."""
    _ = i18n.gettext
    height, top, bottom, left, right = 230, 22, 34, 34, 40
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    n = max(1, len(trend))
    step = plot_w / n
    bar_w = max(4.0, step * 0.7)
    totals = [t["dist"]["total"] for t in trend]
    peak = max([v for v in totals if v is not None] or [0]) or 1
    parts: list[Markup] = []
    for frac in (0, 0.5, 1):  # horizontal guides; left axis responses, right axis satisfaction
        y = top + plot_h * (1 - frac)
        parts.append(Markup('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#d0d4da" stroke-width="0.6"/>')
                     % (left, y, left + plot_w, y))
        parts.append(_t(left - 4, y + 3, i18n.number(round(peak * frac)), anchor="end", size=8))
        parts.append(_t(left + plot_w + 4, y + 3, i18n.percent(frac), anchor="start", size=8, fill=LINE))
    points = []
    for i, t in enumerate(trend):
        x = left + step * i + (step - bar_w) / 2
        cx = x + bar_w / 2
        total = t["dist"]["total"]
        if t.get("weekend"):
            parts.append(Markup('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="#f4f6f8"/>')
                         % (left + step * i, top, step, plot_h))
        if total is None:
            stub = min(plot_h, 14)
            parts.append(Markup('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>')
                         % (x, top + plot_h - stub, bar_w, stub, HIDDEN))
            parts.append(_t(cx, top + plot_h - stub - 3, f"<{minimum}", size=7))
        else:
            h = plot_h * total / peak
            parts.append(Markup('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="rgb(%d,%d,%d)"/>')
                         % (x, top + plot_h - h, bar_w, h, *BLUE))
            if total:
                parts.append(_t(cx, top + plot_h - h - 3, i18n.number(total), size=7))
        sat = t["dist"]["satisfaction"]
        if sat is not None:
            points.append((cx, top + plot_h * (1 - sat)))
        if granularity == "week" or n <= 16 or i % 2 == 0 or i == n - 1:
            parts.append(_t(cx, top + plot_h + 12, t["short"], size=8))
    if len(points) > 1:
        parts.append(Markup('<polyline points="%s" fill="none" stroke="%s" stroke-width="1.6"/>')
                     % (" ".join(f"{x:.1f},{y:.1f}" for x, y in points), LINE))
    for x, y in points:
        parts.append(Markup('<rect x="%.1f" y="%.1f" width="5" height="5" fill="%s"/>') % (x - 2.5, y - 2.5, LINE))
    parts.append(_t(left, top - 9, _("Responses"), anchor="start", size=8, weight="bold"))
    parts.append(_t(left + plot_w, top - 9, _("Satisfaction"), anchor="end", size=8, weight="bold", fill=LINE))
    label = _("Responses per day (bars) and satisfaction (line)") if granularity == "day" \
        else _("Responses per week (bars) and satisfaction (line)")
    return Markup('<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" '
                  'role="img" aria-label="%s"><title>%s</title>%s</svg>') % (
        WIDTH, height, WIDTH, height, label, label, Markup("").join(parts))


def heatmap_svg(rows: Sequence[dict], heat_max: int, minimum: int) -> Markup:
    """Counted answers by weekday (rows) and local hour (columns), each cell with its count."""
    _ = i18n.gettext
    left, top, cell_h = 34, 16, 20
    cell_w = (WIDTH - left) / 24
    height = top + cell_h * len(rows) + 4
    # One white grid behind every cell: zero cells need no drawing of their own.
    parts: list[Markup] = [Markup('<rect x="%d" y="%d" width="%.1f" height="%d" fill="#ffffff" stroke="#e3e6ea"/>')
                           % (left, top, cell_w * 24, cell_h * len(rows))]
    parts += [Markup('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e3e6ea"/>')
              % (left + cell_w * h, top, left + cell_w * h, top + cell_h * len(rows)) for h in range(1, 24)]
    parts += [Markup('<line x1="%d" y1="%d" x2="%.1f" y2="%d" stroke="#e3e6ea"/>')
              % (left, top + cell_h * r, left + cell_w * 24, top + cell_h * r) for r in range(1, len(rows))]
    for h in range(24):
        parts.append(_t(left + cell_w * (h + 0.5), top - 4, f"{h:02d}", size=8))
    for r, row in enumerate(rows):
        y = top + r * cell_h
        parts.append(_t(left - 4, y + cell_h / 2 + 3, str(row["day"]), anchor="end", size=8))
        for c in row["cells"]:
            x = left + c["hour"] * cell_w
            n = c["n"]
            if n is None:
                parts.append(Markup('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s" stroke="#ffffff"/>')
                             % (x, y, cell_w, cell_h, HIDDEN))
                parts.append(_t(x + cell_w / 2, y + cell_h / 2 + 3, f"<{minimum}", size=7))
            elif n == 0:
                continue
            else:
                fill, ink = cell_colours(n / (heat_max or 1))
                parts.append(Markup('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s" stroke="#ffffff" '
                                    'stroke-width="1"/>') % (x, y, cell_w, cell_h, fill))
                parts.append(_t(x + cell_w / 2, y + cell_h / 2 + 3, i18n.number(n), size=8, fill=ink))
    label = _("Responses by hour of the day and weekday (local time)")
    return Markup('<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" '
                  'role="img" aria-label="%s"><title>%s</title>%s</svg>') % (
        WIDTH, height, WIDTH, height, label, label, Markup("").join(parts))


def legend_text(minimum: int) -> str:
    return i18n.gettext('Grey "<%(minimum)s": too few responses to show.') % {"minimum": minimum}


__all__ = ["cell_colours", "heatmap_svg", "legend_text", "trend_svg"]
