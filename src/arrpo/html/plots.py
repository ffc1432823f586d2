"""Bar charts as inline SVG (no plotting library needed)."""

from __future__ import annotations

import math
from html import escape

PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f"]


def grouped_bars(title: str, groups: list[str], series: dict[str, list[float]], *, width: int = 640,
                 height: int = 260, y_max: float = 1.0) -> str:
    """Grouped vertical bars: one group per ``groups`` entry, one bar per series; values in [0, y_max]."""
    left, right, top, bottom = 44, 12, 30, 56
    plot_w, plot_h = width - left - right, height - top - bottom
    names = list(series)
    group_w = plot_w / max(1, len(groups))
    bar_w = max(2.0, group_w * 0.8 / max(1, len(names)))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" font-family="sans-serif" font-size="11">',
           f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="13" font-weight="bold">{escape(title)}</text>']
    for tick in range(0, 6):
        value = y_max * tick / 5
        y = top + plot_h - plot_h * tick / 5
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{value:.1f}</text>')
    for g, group in enumerate(groups):
        x0 = left + g * group_w + group_w * 0.1
        for s, name in enumerate(names):
            value = series[name][g]
            if value is None or math.isnan(value):
                continue
            h = plot_h * max(0.0, min(value, y_max)) / y_max
            x = x0 + s * bar_w
            out.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w - 1:.1f}" height="{h:.1f}" '
                       f'fill="{PALETTE[s % len(PALETTE)]}"><title>{escape(name)} · {escape(group)}: {value:.3f}</title></rect>')
        label = group if len(group) <= 18 else group[:17] + "…"
        out.append(f'<text x="{left + g * group_w + group_w / 2:.1f}" y="{top + plot_h + 14}" text-anchor="middle">{escape(label)}</text>')
    for s, name in enumerate(names):
        x = left + s * 130
        out.append(f'<rect x="{x}" y="{height - 18}" width="10" height="10" fill="{PALETTE[s % len(PALETTE)]}"/>')
        out.append(f'<text x="{x + 14}" y="{height - 9}">{escape(name)}</text>')
    out.append("</svg>")
    return "".join(out)
