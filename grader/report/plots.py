"""SVG figures for feedback and the summary: loss curves, heat maps, score histograms.

Each figure is SVG text written here directly: about a millisecond a figure, where
matplotlib's Agg canvas took 0.08-0.2 CPU-s (and ~0.45 s to import). The browser draws
the text in the page's fonts, Hangul included, so no font file is read. Every string put
in a figure is escaped for XML: axis labels can come from a student's values.
"""

from __future__ import annotations

import html
import math
import re
import unicodedata
from dataclasses import dataclass

import numpy as np

from grader.check.captured import Trace
from grader.report.i18n import Text

LOG_RATIO = 1e3  # finite losses spanning more than this ratio are drawn on a log axis
DRAWN_LIMIT = 1e100  # larger losses are drawn at this height, so every axis limit stays a float
MAX_POINTS = 4000  # longer curves are thinned to about this many points (markers use every epoch)
# Where every curve is all inf/nan after the first EARLY_END of the epochs, the plot ends
# soon after that instead of squeezing the finite part into the axis' first few percent.
EARLY_END = 0.25
END_MARGIN = 1.15
COLORS = {"student": "#1a73e8", "reference": "#5f6368", "inf": "#e37400", "nan": "#c5221f"}
FONTS = "'Noto Sans KR', 'NanumGothic', 'Malgun Gothic', 'Apple SD Gothic Neo', sans-serif"
FONT_SIZE = 13
GRID = ' stroke="#e3e3e3" stroke-width="1"'
TICK = ' stroke="#555" stroke-width="1"'
CRISP = ' shape-rendering="crispEdges"'  # no hairline seams between adjacent cells
# matplotlib's colormaps, as evenly spaced stops: `bwr` and ColorBrewer's `Blues`.
BWR = np.array([(0.0, 0.0, 1.0), (1.0, 1.0, 1.0), (1.0, 0.0, 0.0)])
BLUES = np.array([(0.9686, 0.9843, 1.0), (0.8706, 0.9216, 0.9686), (0.7765, 0.8588, 0.9373),
                  (0.6196, 0.7922, 0.8824), (0.4196, 0.6824, 0.8392), (0.2588, 0.5725, 0.7765),
                  (0.1294, 0.4431, 0.7098), (0.0314, 0.3176, 0.6118), (0.0314, 0.1882, 0.4196)])
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
LABEL_CHARS = 24  # longer heat-map tick labels are cut


def y_scale(*curves: np.ndarray) -> str:
    """`log` when the losses diverge (non-finite values, or positive ones spanning over
    LOG_RATIO), `symlog` when such losses also reach zero or below, else `linear`."""
    values = np.concatenate([c for c in curves if c.size] or [np.empty(0)])
    finite = values[np.isfinite(values)]
    positive = finite[finite > 0]
    if not positive.size:
        return "linear"
    if not ((~np.isfinite(values)).any() or positive.max() / positive.min() > LOG_RATIO):
        return "linear"
    return "log" if positive.size == finite.size else "symlog"


def wants_log_scale(*curves: np.ndarray) -> bool:
    return y_scale(*curves) != "linear"


def beyond_drawn_limit(*curves: np.ndarray) -> bool:
    """Whether some finite loss is drawn at ±DRAWN_LIMIT instead of its own height."""
    return any(bool((np.abs(c[np.isfinite(c)]) > DRAWN_LIMIT).any()) for c in curves)


def _thin(losses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Epoch numbers (1-based) and finite losses, thinned to about MAX_POINTS points."""
    step = max(1, math.ceil(losses.size / MAX_POINTS))
    epochs = np.arange(1, losses.size + 1)[::step]
    shown = np.clip(losses[::step], -DRAWN_LIMIT, DRAWN_LIMIT)
    return epochs, np.where(np.isfinite(losses[::step]), shown, np.nan)


def _drawn_end(curve: np.ndarray) -> int:
    """The last epoch with something to draw: its last finite loss, or its first nan."""
    finite, nan = np.flatnonzero(np.isfinite(curve)), np.flatnonzero(np.isnan(curve))
    return max(int(finite[-1]) + 1 if finite.size else 0, int(nan[0]) + 1 if nan.size else 0)


def _ends_early(curve: np.ndarray, longest: int) -> bool:
    return curve.size > 0 and _drawn_end(curve) <= EARLY_END * longest


def drawn_epochs(*curves: np.ndarray) -> int | None:
    """The last epoch worth drawing when every curve turns inf/nan for good early on (the
    first nan and the last finite loss inside), else None: the whole run is drawn."""
    longest = max((c.size for c in curves), default=0)
    drawn = [c for c in curves if c.size]
    if not drawn or not all(_ends_early(c, longest) for c in drawn):
        return None
    return min(longest, math.ceil(max(map(_drawn_end, drawn)) * END_MARGIN) + 1)


def early_end_only_in_one(*curves: np.ndarray) -> bool:
    """One curve diverges early while another runs on: a logarithmic epoch axis shows both."""
    longest = max((c.size for c in curves), default=0)
    early = [_ends_early(c, longest) for c in curves if c.size]
    return any(early) and not all(early)


# ---------------------------------------------------------------- SVG text

def _escape(text: str) -> str:
    """Text safe inside an XML element or attribute: markup escaped, characters XML forbids
    dropped, line breaks made spaces."""
    return html.escape(NOT_XML.sub("", str(text)).replace("\n", " ").replace("\r", " ").replace("\t", " "))


def _width(text: str, size: float = FONT_SIZE) -> float:
    """About how wide `text` is drawn: wide (CJK) characters a full em, the rest 0.6 em."""
    return size * sum(1.0 if unicodedata.east_asian_width(c) in "WF" else 0.6 for c in text)


def _cut(label: str, chars: int = LABEL_CHARS) -> str:
    return label if len(label) <= chars else label[:chars - 1] + "…"


def _text(x: float, y: float, text: str, anchor: str = "middle", size: float = FONT_SIZE, colour: str = "#333",
          rotate: bool = False, sup: str = "") -> str:
    """One label, centred vertically on `y`; `sup` is a superscript after it (an exponent)."""
    turn = f' transform="rotate(-90 {x:.1f} {y:.1f})"' if rotate else ""
    tail = f'<tspan dy="-0.45em" font-size="{size * 0.75:.1f}">{_escape(sup)}</tspan>' if sup else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" dy="0.35em" text-anchor="{anchor}" font-size="{size:g}" '
            f'fill="{colour}"{turn}>{_escape(text)}{tail}</text>')


def _stroke(colour: str, width: float = 1.0, dash: str = "", opacity: float = 1.0) -> str:
    """A line's style attributes."""
    return (f' stroke="{colour}" stroke-width="{width:g}"' + (f' stroke-dasharray="{dash}"' if dash else "")
            + (f' stroke-opacity="{opacity:g}"' if opacity < 1 else ""))


def _line(x1: float, y1: float, x2: float, y2: float, style: str) -> str:
    return f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}"{style}/>'


def _rect(x: float, y: float, width: float, height: float, fill: str, extra: str = "") -> str:
    return f'<rect x="{x:.2f}" y="{y:.2f}" width="{width:.2f}" height="{height:.2f}" fill="{fill}"{extra}/>'


def _svg(width: float, height: float, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="{FONTS}" font-size="{FONT_SIZE}">'
            f'<rect width="100%" height="100%" fill="white"/>' + "".join(body) + "</svg>")


# ---------------------------------------------------------------- axes

@dataclass(frozen=True)
class Scale:
    """An axis' limits and kind: `linear`, `log`, or `symlog` (linear within ±threshold)."""

    kind: str
    low: float
    high: float
    threshold: float = 1.0
    integer: bool = False  # linear ticks at whole numbers only

    def _units(self, values) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        with np.errstate(all="ignore"):  # the branch np.where does not take may overflow
            if self.kind == "log":
                return np.log10(values)
            if self.kind == "symlog":
                size = np.abs(values)
                logs = np.log10(np.maximum(size, self.threshold)) - math.log10(self.threshold)
                return np.sign(values) * np.where(size <= self.threshold, size / self.threshold, 1 + logs)
        return values

    def place(self, values, start: float, length: float) -> np.ndarray:
        """Pixel positions of `values` on an axis from `start` over `length` pixels."""
        low, high = self._units([self.low, self.high]) / 2  # halves: the span of two doubles can overflow
        return start + (self._units(values) / 2 - low) / (high - low) * length

    def ticks(self) -> list[tuple[float, str, str]]:
        """(value, label, superscript) of each tick: nice steps on a linear axis, powers of
        ten on a log one, zero and powers of ten on a symlog one."""
        if self.kind == "linear":
            return _linear_ticks(self.low, self.high, self.integer)
        exponents = range(math.ceil(math.log10(self.threshold if self.kind == "symlog" else self.low) - 1e-9),
                          math.floor(math.log10(max(abs(self.low), abs(self.high))) + 1e-9) + 1)
        step = _nice_integer(len(exponents) / 8)
        powers = [k for k in exponents if k % step == 0]
        if self.kind == "log":
            return [_power(10.0 ** k, k) for k in powers if self.low <= 10.0 ** k <= self.high]
        ticks = [(0.0, "0", "")]
        for sign in (1, -1):
            ticks += [_power(sign * 10.0 ** k, k) for k in powers if self.low <= sign * 10.0 ** k <= self.high]
        return sorted(ticks)


def _power(value: float, exponent: int) -> tuple[float, str, str]:
    if -2 <= exponent <= 4:
        return value, f"{value:g}", ""
    return value, "-10" if value < 0 else "10", str(exponent)


def _nice_integer(raw: float) -> int:
    return next((n for n in (1, 2, 5, 10, 20, 25, 50, 100, 200) if n >= raw), 500)


def _nice_step(span: float, count: int = 6) -> float:
    raw = span / count
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-9))


def _linear_ticks(low: float, high: float, integer: bool = False) -> list[tuple[float, str, str]]:
    step = _nice_step(high - low) if 1e-300 < high - low < 1e300 else 0.0
    if integer:
        step = max(1.0, round(step))
    if not (step > 0 and math.isfinite(step)):
        return [(low, f"{low:.3g}", ""), (high, f"{high:.3g}", "")]
    first = math.ceil(low / step - 1e-9)
    values = [(first + i) * step for i in range(int((high - low) / step + 1e-9) + 2)]
    values = [v for v in values if low - 1e-9 * step <= v <= high + 1e-9 * step]
    largest = max(abs(low), abs(high))
    return [(v, _number(v, step, largest), "") for v in values]


def _number(value: float, step: float, largest: float) -> str:
    """A tick label: as many decimals as the step needs between 1e-4 and 1e6, else scientific."""
    if abs(value) < step / 2:
        return "0"
    if 1e-4 <= largest < 1e6:
        decimals = next((d for d in range(16) if abs(round(step, d) - step) <= step * 1e-6), 15)
        return f"{value:.{decimals}f}"
    return f"{value:.{min(15, math.floor(math.log10(largest)) - math.floor(math.log10(step)) + 2)}g}"


def _padded(low: float, high: float) -> tuple[float, float]:
    """Limits 5% past the data, as matplotlib draws them; a single value gets room around it."""
    pad = (high - low) * 0.05 or (abs(low) * 0.05 if low else 0.5)
    return low - pad, high + pad


def _log_limits(low: float, high: float) -> tuple[float, float]:
    """Positive limits 5% (of the span in decades) past the data; snapped out to powers of
    ten where fewer than two would show."""
    bottom, top = math.log10(low), math.log10(high)
    pad = (top - bottom) * 0.05
    if math.floor(top + pad) - math.ceil(bottom - pad) >= 1:
        return 10.0 ** (bottom - pad), 10.0 ** (top + pad)
    widen = math.floor(bottom) == math.ceil(top)  # a single power of ten
    return 10.0 ** max(-323, math.floor(bottom) - widen), 10.0 ** (math.ceil(top) + widen)


def _loss_scale(kind: str, values: np.ndarray) -> Scale:
    finite = values[np.isfinite(values)]
    if not finite.size:
        return Scale("linear", 0.0, 1.0)
    low, high = float(finite.min()), float(finite.max())
    if kind == "linear":
        return Scale("linear", *_padded(low, high))
    threshold = float(finite[finite > 0].min())
    if kind == "log":
        return Scale("log", *_log_limits(threshold, high))
    # symlog: linear only below the smallest positive loss; no empty negative half
    bottom = -_log_limits(threshold, max(-low, threshold))[1] if low < 0 else 0.0
    return Scale("symlog", bottom, _log_limits(threshold, high)[1], threshold)


@dataclass(frozen=True)
class Frame:
    """A plot area in pixels, with its two scales."""

    left: float
    top: float
    width: float
    height: float
    x: Scale
    y: Scale

    def points(self, xs, ys) -> tuple[np.ndarray, np.ndarray]:
        return self.x.place(xs, self.left, self.width), self.y.place(ys, self.top + self.height, -self.height)

    def axes(self, x_title: str, y_title: str, grid_x: bool = True) -> list[str]:
        """Grid, ticks and their labels, the frame, and both axis titles (the y one at the
        figure's left edge: `_left_margin` leaves room for it)."""
        bottom, right = self.top + self.height, self.left + self.width
        out, last = [], math.inf
        for value, label, sup in self.y.ticks():
            y = float(self.y.place([value], bottom, -self.height)[0])
            if abs(last - y) < 14:  # symlog's 0 and 1 can be a few pixels apart
                continue
            last = y
            out += [_line(self.left, y, right, y, GRID), _line(self.left - 4, y, self.left, y, TICK),
                    _text(self.left - 7, y, label, "end", sup=sup)]
        for value, label, sup in self.x.ticks():
            x = float(self.x.place([value], self.left, self.width)[0])
            out += [_line(x, self.top, x, bottom, GRID)] if grid_x else []
            out += [_line(x, bottom, x, bottom + 4, TICK), _text(x, bottom + 15, label, sup=sup)]
        return out + [_rect(self.left, self.top, self.width, self.height, "none", TICK),
                      _text(self.left + self.width / 2, bottom + 34, x_title),
                      _text(14, self.top + self.height / 2, y_title, rotate=True)]


def _left_margin(y: Scale) -> float:
    """Room for the y axis' title and its widest tick label."""
    return 28 + max((_width(label) + _width(sup, FONT_SIZE * 0.75) for _, label, sup in y.ticks()), default=0) + 10


# ---------------------------------------------------------------- loss curve

def _path(frame: Frame, xs: np.ndarray, ys: np.ndarray, style: str, colour: str) -> list[str]:
    """A curve broken at its inf/nan epochs; a point with no finite neighbour is a dot."""
    px, py = frame.points(xs, ys)
    finite = np.isfinite(py)
    starts = finite & ~np.concatenate([[False], finite[:-1]])
    alone = starts & ~np.concatenate([finite[1:], [False]])
    commands = [("M" if start else "L") + f"{x:.1f} {y:.1f}"
                for x, y, start, ok in zip(px.tolist(), py.tolist(), starts.tolist(), finite.tolist()) if ok]
    dots = [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"/>'
            for x, y in zip(px[alone].tolist(), py[alone].tolist())]
    return ([f'<path d="{" ".join(commands)}" fill="none" stroke-linejoin="round"{style}/>'] if commands else []) + dots


def _along(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points every few pixels along a drawn line (its finite points joined), so that a
    steep stretch counts as much as a flat one."""
    keep = np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[keep], ys[keep]
    if xs.size < 2:
        return xs, ys
    distance = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(xs), np.diff(ys)))])
    at = np.arange(0.0, distance[-1], max(4.0, distance[-1] / 5000))
    return np.interp(at, distance, xs), np.interp(at, distance, ys)


def _legend(frame: Frame, entries: list[tuple[str, str]], xs: np.ndarray, ys: np.ndarray) -> list[str]:
    """Entries (label, line style) in a box in the plot's corner that covers the fewest of
    the points `xs, ys` (pixels) along what is drawn, as matplotlib's `loc="best"`."""
    size = FONT_SIZE - 1
    width, height = 40 + max(_width(label, size) for label, _ in entries), 8 + 17 * len(entries)
    right, low = frame.left + frame.width - width - 8, frame.top + frame.height - height - 8
    corners = [(right, frame.top + 8), (frame.left + 8, frame.top + 8), (frame.left + 8, low), (right, low)]
    covered = [int(((xs >= x) & (xs <= x + width) & (ys >= y) & (ys <= y + height)).sum()) for x, y in corners]
    x, y = corners[covered.index(min(covered))]
    out = [_rect(x, y, width, height, "white", ' fill-opacity="0.85" stroke="#ccc" rx="3"')]
    for i, (label, style) in enumerate(entries):
        middle = y + 12.5 + 17 * i
        out += [_line(x + 8, middle, x + 30, middle, style),
                _text(x + 36, middle, label, "start", size)]
    return out


def loss_curve_svg(losses: list[float], reference: list[float], text: Text) -> str:
    """The student's loss per epoch over the reference's, with the first inf and nan marked."""
    student, expected = np.asarray(losses, dtype=float), np.asarray(reference, dtype=float)
    mine, theirs = _thin(student), _thin(expected)
    y = _loss_scale(y_scale(student, expected), np.concatenate([mine[1], theirs[1]]))
    end = drawn_epochs(student, expected)
    longest = max(student.size, expected.size, 1)
    if end:
        x = Scale("linear", 0.0, float(end), integer=True)
    elif early_end_only_in_one(student, expected):
        x = Scale("log", 1.0, float(max(10, longest)))
    else:
        x = Scale("linear", 0.0, longest * 1.02, integer=True)  # the last epoch off the frame
    width, height, left = 750, 360, _left_margin(y)
    frame = Frame(left, 12, width - left - 24, height - 12 - 48, x, y)

    yours = _stroke(COLORS["student"], 2.6, opacity=0.75)
    body = frame.axes(text("plot_epoch"), text("plot_loss")) + _path(frame, *mine, yours, COLORS["student"])
    entries = [(text("plot_yours"), yours)]
    if expected.size:  # dashed on top: visible where the curves agree
        style = _stroke(COLORS["reference"], 1.4, "6 3")
        body += _path(frame, *theirs, style, COLORS["reference"])
        entries.append((text("plot_reference"), style))
    trace = Trace(student, 0, [])
    first_bad, first_nan = trace.first_nonfinite_epoch, trace.first_nan_epoch
    reference_bad = Trace(expected, 0, []).first_nonfinite_epoch
    markers = []  # (epoch, legend label, line style)
    if first_bad and first_bad != first_nan:
        markers.append((first_bad, text("plot_first_inf", epoch=first_bad), _stroke(COLORS["inf"], 1.2, "5 3")))
    if first_nan:
        markers.append((first_nan, text("plot_first_nan", epoch=first_nan), _stroke(COLORS["nan"], 1.2)))
    if reference_bad and reference_bad != first_bad:
        markers.append((reference_bad, text("plot_reference_nonfinite", epoch=reference_bad),
                        _stroke(COLORS["reference"], 1.2, "1.5 2.5")))
    drawn = [_along(*frame.points(*mine)), _along(*frame.points(*theirs))]
    for epoch, label, style in markers:
        at = float(x.place([epoch], frame.left, frame.width)[0])
        body.append(_line(at, frame.top, at, frame.top + frame.height, style))
        entries.append((label, style))
        drawn.append(_along(np.array([at, at]), np.array([frame.top, frame.top + frame.height])))
    xs, ys = (np.concatenate([d[i] for d in drawn]) for i in (0, 1))
    return _svg(width, height, body + _legend(frame, entries, xs, ys))


# ---------------------------------------------------------------- heat map

def colours(stops: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """RGB (0..1, a last axis of 3) at `fractions` (0..1) of a colormap given as evenly
    spaced stops; nan, a value not drawn, is light grey."""
    at = np.linspace(0.0, 1.0, len(stops))
    rgb = np.stack([np.interp(fractions, at, stops[:, i]) for i in range(3)], axis=-1)
    return np.where(np.isnan(fractions)[..., None], 0.87, rgb)


def _hex(rgb: np.ndarray) -> str:
    return "#" + "".join(f"{round(c * 255):02x}" for c in rgb.tolist())


def _tick_labels(labels: list[str], count: int) -> list[str]:
    return [_cut(str(label)) for label in labels] if len(labels) == count else [str(i) for i in range(count)]


def heatmap_svg(values: list[list[float]], rows: list[str], columns: list[str],
                vmin: float | None, vmax: float | None, row_title: str = "", column_title: str = "") -> str:
    """A matrix as the lecture draws it with `matshow` (square cells, column labels on top),
    each cell labelled with its value when there are at most 100, and a colour bar."""
    matrix = np.asarray(values, dtype=float)
    if matrix.ndim != 2:
        raise ValueError(f"a heat map needs a 2-D matrix, not one of shape {matrix.shape}")
    count_rows, count_columns = matrix.shape
    finite = matrix[np.isfinite(matrix)]
    low = vmin if vmin is not None else (float(finite.min()) if finite.size else 0.0)
    high = vmax if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    bar = Scale("linear", low, high) if high > low else Scale("linear", low, low + 1.0)  # all one colour
    stops = BWR if (vmin is not None and vmin < 0) else BLUES
    row_labels, column_labels = _tick_labels(rows, count_rows), _tick_labels(columns, count_columns)

    left = 16 + (24 if row_title else 0) + max(map(_width, row_labels), default=0)
    top = 30 + (24 if column_title else 0)
    bar_room = 16 + 18 + 8 + max(_width(label) for _, label, _ in bar.ticks()) + 10
    cell = max(0.5, min((min(1000.0, 300 + 65 * count_columns) - left - bar_room) / max(count_columns, 1),
                        (min(800.0, 200 + 50 * count_rows) - top - 12) / max(count_rows, 1), 90.0))
    grid_width, grid_height = cell * count_columns, cell * max(count_rows, 1)

    rgb = colours(stops, np.clip(bar.place(matrix, 0.0, 1.0), 0.0, 1.0))
    dark = rgb @ np.array([0.299, 0.587, 0.114]) < 0.5
    size = min(FONT_SIZE - 1.0, cell * 0.28)
    body = []
    for (i, j), value in np.ndenumerate(matrix):
        body.append(_rect(left + j * cell, top + i * cell, cell, cell, _hex(rgb[i, j]), CRISP))
        if matrix.size <= 100:
            label = f"{value:.2f}" if not abs(value) >= 1e6 else f"{value:.2g}"  # 1.7e308 fits a cell
            body.append(_text(left + (j + 0.5) * cell, top + (i + 0.5) * cell, label, size=size,
                              colour="white" if dark[i, j] else "black"))
    for i in range(0, count_rows, math.ceil(16 / cell)):  # labels thinned where cells are small
        body.append(_text(left - 6, top + (i + 0.5) * cell, row_labels[i], "end"))
    for j in range(0, count_columns, math.ceil((max(map(_width, column_labels), default=0) + 8) / cell)):
        body.append(_text(left + (j + 0.5) * cell, top - 12, column_labels[j]))
    body.append(_rect(left, top, grid_width, cell * count_rows, "none", TICK))
    if column_title:
        body.append(_text(left + grid_width / 2, 18, column_title))
    if row_title:
        body.append(_text(18, top + grid_height / 2, row_title, rotate=True))

    bar_left, steps = left + grid_width + 16, 64
    for k, shade in enumerate(colours(stops, (np.arange(steps) + 0.5) / steps)):
        body.append(_rect(bar_left, top + grid_height * (1 - (k + 1) / steps), 18, grid_height / steps, _hex(shade),
                          CRISP))
    body.append(_rect(bar_left, top, 18, grid_height, "none", TICK))
    for value, label, _ in bar.ticks():
        y = float(bar.place([value], top + grid_height, -grid_height)[0])
        body += [_line(bar_left + 18, y, bar_left + 22, y, TICK), _text(bar_left + 25, y, label, "start")]
    return _svg(left + grid_width + bar_room, top + grid_height + 12, body)


# ---------------------------------------------------------------- histogram

def histogram_svg(scores: list[float], max_score: float, text: Text) -> str:
    """How many submissions got each score, one bar per point (or per bin for large scales)."""
    finite = [s for s in scores if math.isfinite(s)]
    top = max(max_score, max(finite, default=0.0), 1.0)
    bin_width = max(1.0, math.ceil(top / 20))
    edges = np.arange(0, top + 2 * bin_width, bin_width) - bin_width / 2  # the last bin holds full marks
    counts, _ = np.histogram(finite, bins=edges)
    y = Scale("linear", 0.0, max(1, int(counts.max(initial=0))) * 1.08, integer=True)
    width, height, left = 750, 320, _left_margin(y)
    frame = Frame(left, 12, width - left - 24, height - 12 - 48, Scale("linear", -bin_width, top + bin_width), y)
    body = frame.axes(text("plot_score"), text("plot_students"), grid_x=False)
    for count, start in zip(counts.tolist(), edges[:-1].tolist()):
        if count:
            (x0, x1), (y0, y1) = frame.points([start, start + bin_width], [count, 0])
            body.append(_rect(x0, y0, x1 - x0, y1 - y0, COLORS["student"], ' stroke="white"'))
    return _svg(width, height, body)
