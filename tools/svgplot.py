"""A minimal SVG line chart (no plotting package is installable here, and none is needed)."""
from __future__ import annotations

from html import escape
from typing import Dict, List, Sequence, Tuple

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]


def line_chart(series: Dict[str, Sequence[Tuple[float, float]]], title: str, xlabel: str, ylabel: str,
               width: int = 720, height: int = 360, log_y: bool = False) -> str:
    import math

    pts = [p for s in series.values() for p in s]
    if not pts:
        return ""
    fy = (lambda v: math.log10(max(v, 1e-9))) if log_y else (lambda v: v)
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(fy(p[1]) for p in pts), max(fy(p[1]) for p in pts)
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y1 = y0 + 1
    L, R, T, B = 60, 160, 30, 45
    W, H = width - L - R, height - T - B

    def sx(x: float) -> float:
        return L + (x - x0) / (x1 - x0) * W

    def sy(y: float) -> float:
        return T + H - (fy(y) - y0) / (y1 - y0) * H

    out: List[str] = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
                      f'font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="white"/>',
                      f'<text x="{L}" y="18" font-size="13">{escape(title)}</text>',
                      f'<rect x="{L}" y="{T}" width="{W}" height="{H}" fill="none" stroke="#999"/>']
    for i in range(5):
        yv = y0 + (y1 - y0) * i / 4
        label = 10 ** yv if log_y else yv
        yy = T + H - H * i / 4
        out.append(f'<line x1="{L}" x2="{L + W}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{L - 6}" y="{yy + 4:.1f}" text-anchor="end">{label:.3g}</text>')
        xv = x0 + (x1 - x0) * i / 4
        xx = L + W * i / 4
        out.append(f'<text x="{xx:.1f}" y="{T + H + 16}" text-anchor="middle">{xv:.4g}</text>')
    out.append(f'<text x="{L + W / 2}" y="{height - 8}" text-anchor="middle">{escape(xlabel)}</text>')
    out.append(f'<text x="14" y="{T + H / 2}" transform="rotate(-90 14 {T + H / 2})" text-anchor="middle">{escape(ylabel)}</text>')
    for k, (name, s) in enumerate(series.items()):
        c = COLORS[k % len(COLORS)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s)
        out.append(f'<polyline fill="none" stroke="{c}" stroke-width="1.5" points="{path}"/>')
        if len(s) == 1:
            out.append(f'<circle cx="{sx(s[0][0]):.1f}" cy="{sy(s[0][1]):.1f}" r="3" fill="{c}"/>')
        out.append(f'<rect x="{L + W + 12}" y="{T + 14 * k}" width="10" height="3" fill="{c}"/>')
        out.append(f'<text x="{L + W + 26}" y="{T + 14 * k + 5}">{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out)
