"""PNG figures for feedback and the summary: loss curves, heat maps, score histograms.

Figures are made with matplotlib's object API on the Agg canvas: no pyplot, so no global
figure list to leak, and nothing is shown. Korean labels use the NanumGothic font shipped
by the `koreanize-matplotlib` package (read as a file; that package is never imported,
since importing it changes matplotlib's global settings).
"""

from __future__ import annotations

import functools
import importlib.util
import io
import math
from pathlib import Path

import numpy as np
from matplotlib import font_manager, rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from grader.check.captured import Trace
from grader.report.i18n import Text

LOG_RATIO = 1e3  # finite losses spanning more than this ratio are drawn on a log axis
DRAWN_LIMIT = 1e100  # larger losses are drawn at this height: axis margins past ~1e300 overflow
MAX_POINTS = 4000  # longer curves are thinned to about this many points (markers use every epoch)
# Where every curve is all inf/nan after the first EARLY_END of the epochs, the plot ends
# soon after that instead of squeezing the finite part into the axis' first few percent.
EARLY_END = 0.25
END_MARGIN = 1.15
DPI = 100
COLORS = {"student": "#1a73e8", "reference": "#5f6368", "inf": "#e37400", "nan": "#c5221f"}


@functools.cache
def _font_families() -> tuple[str, ...]:
    """Latin text in DejaVu Sans, Hangul falling back to NanumGothic when it is installed."""
    spec = importlib.util.find_spec("koreanize_matplotlib")
    if spec is None or not spec.submodule_search_locations:
        return ("DejaVu Sans",)
    font = Path(spec.submodule_search_locations[0]) / "fonts" / "NanumGothic.ttf"
    font_manager.fontManager.addfont(str(font))
    return ("DejaVu Sans", font_manager.FontProperties(fname=str(font)).get_name())


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    FigureCanvasAgg(figure)
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


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


def loss_curve_png(losses: list[float], reference: list[float], text: Text) -> bytes:
    """The student's loss per epoch over the reference's, with the first inf and nan marked."""
    student, expected = np.asarray(losses, dtype=float), np.asarray(reference, dtype=float)
    with rc_context({"font.family": list(_font_families())}):
        figure = _figure(7.5, 3.6)
        axes = figure.add_subplot()
        if expected.size:
            axes.plot(*_thin(expected), color=COLORS["reference"], linestyle="--", linewidth=1.4,
                      label=text("plot_reference"), zorder=3)  # dashed on top: visible where the curves agree
        axes.plot(*_thin(student), color=COLORS["student"], linewidth=2.6, alpha=0.75, label=text("plot_yours"))
        trace = Trace(student, 0, [])
        first_bad, first_nan = trace.first_nonfinite_epoch, trace.first_nan_epoch
        if first_bad and first_bad != first_nan:
            axes.axvline(first_bad, color=COLORS["inf"], linestyle="--", linewidth=1.2,
                         label=text("plot_first_inf", epoch=first_bad))
        if first_nan:
            axes.axvline(first_nan, color=COLORS["nan"], linewidth=1.2, label=text("plot_first_nan", epoch=first_nan))
        reference_bad = Trace(expected, 0, []).first_nonfinite_epoch
        if reference_bad and reference_bad != first_bad:
            axes.axvline(reference_bad, color=COLORS["reference"], linestyle=":", linewidth=1.2,
                         label=text("plot_reference_nonfinite", epoch=reference_bad))
        scale = y_scale(student, expected)
        if scale == "log":
            axes.set_yscale("log", nonpositive="mask")
        elif scale == "symlog":  # linear only below the smallest positive loss; no empty negative half
            finite = np.concatenate([student, expected])
            finite = finite[np.isfinite(finite)]
            axes.set_yscale("symlog", linthresh=float(finite[finite > 0].min()))
            if (finite >= 0).all():
                axes.set_ylim(bottom=0)
        end = drawn_epochs(student, expected)
        if end:
            axes.set_xlim(0, end)
        elif early_end_only_in_one(student, expected):
            axes.set_xscale("log")
        axes.set_xlabel(text("plot_epoch"))
        axes.set_ylabel(text("plot_loss"))
        axes.grid(alpha=0.3)
        axes.legend(loc="best", fontsize="small")
        return _png(figure)


def heatmap_png(values: list[list[float]], rows: list[str], columns: list[str],
                vmin: float | None, vmax: float | None, row_title: str = "", column_title: str = "") -> bytes:
    """A matrix as the lecture draws it with `matshow`, each cell labelled with its value and
    the axes with their titles; constrained layout keeps the colorbar's labels inside."""
    matrix = np.asarray(values, dtype=float)
    with rc_context({"font.family": list(_font_families())}):
        height = min(8.0, 2.0 + 0.5 * matrix.shape[0])
        figure = _figure(min(10.0, 3.0 + 0.65 * matrix.shape[1]), height)
        axes = figure.add_subplot()
        image = axes.matshow(matrix, cmap="bwr" if (vmin is not None and vmin < 0) else "Blues",
                             vmin=vmin, vmax=vmax)
        figure.colorbar(image, ax=axes, shrink=0.9, pad=0.04)
        axes.set_xticks(range(matrix.shape[1]), columns or range(matrix.shape[1]))
        axes.set_yticks(range(matrix.shape[0]), rows or range(matrix.shape[0]))
        axes.xaxis.set_label_position("top")  # matshow puts the column labels on top
        axes.set_xlabel(column_title)
        axes.set_ylabel(row_title)
        if matrix.size <= 100:
            for (i, j), value in np.ndenumerate(matrix):
                red, green, blue, _ = image.cmap(image.norm(value))
                dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
                axes.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize="small",
                          color="white" if dark else "black")
        return _png(figure)


def histogram_png(scores: list[float], max_score: float, text: Text) -> bytes:
    """How many submissions got each score, one bar per point (or per bin for large scales)."""
    with rc_context({"font.family": list(_font_families())}):
        figure = _figure(7.5, 3.2)
        axes = figure.add_subplot()
        top = max(max_score, max(scores, default=0.0), 1.0)
        width = max(1.0, math.ceil(top / 20))
        edges = np.arange(0, top + 2 * width, width) - width / 2  # the last bin holds full marks
        axes.hist(scores, bins=edges, color=COLORS["student"], edgecolor="white")
        axes.set_xlim(-width, top + width)
        axes.set_xlabel(text("plot_score"))
        axes.set_ylabel(text("plot_students"))
        axes.yaxis.get_major_locator().set_params(integer=True)
        axes.grid(axis="y", alpha=0.3)
        return _png(figure)
