"""SVG figures: well-formed whatever the values, escaped labels, matplotlib's colours, cheap."""

import math
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest

from grader.report.i18n import Text
from grader.report.plots import BLUES, BWR, Scale, colours, heatmap_svg, histogram_svg, loss_curve_svg

EN, KO = Text("en"), Text("ko")
SVG = "{http://www.w3.org/2000/svg}"
NUMERIC = ("x", "y", "x1", "x2", "y1", "y2", "cx", "cy", "width", "height")


def diverging(n=100, first_inf=34, first_nan=72):
    return [48.6 * 11.385 ** i for i in range(first_inf - 1)] + [math.inf] * (first_nan - first_inf) \
        + [math.nan] * (n - first_nan + 1)


def parsed(svg: str) -> ElementTree.Element:
    """The figure as XML, every coordinate a finite number."""
    root = ElementTree.fromstring(svg)
    for element in root.iter():
        for name in NUMERIC:
            if name in element.attrib and not element.attrib[name].endswith("%"):
                assert math.isfinite(float(element.attrib[name])), (element.tag, name, element.attrib[name])
        for number in re.findall(r"[-\d.e+]+|nan|inf", element.attrib.get("d", "")):
            assert number not in ("nan", "inf"), element.attrib["d"][:80]
    return root


def texts(root: ElementTree.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


@pytest.mark.parametrize("losses, reference", [
    ([0.5] * 30 + [0.0, 1.7e308, math.nan], [1.0, 0.5]),
    ([math.nan] * 10, []),
    ([], [1.0, 0.5]),
    ([2.0], []),
    ([-3.0, -1.0, 0.5, 1e5, math.inf], [1.0, 0.5]),
    ([1e300, -1e300, 5e-324], [math.inf]),
    (list(np.linspace(48, 1, 9000)), diverging(9000)),
    ([1.0, 1.0, 1.0], [1.0, 1.0, 1.0]),
])
def test_a_loss_curve_of_any_values_is_well_formed(losses, reference):
    assert texts(parsed(loss_curve_svg(losses, reference, EN)))


def test_the_loss_curve_says_what_is_drawn_in_the_pages_language():
    labels = texts(parsed(loss_curve_svg(diverging(), [13.6, 5.0, 0.98], KO)))
    for label in ("에폭", "손실", "내 노트북", "참고 답안", "처음 inf (에폭 34)", "처음 nan (에폭 72)"):
        assert label in labels
    svg = loss_curve_svg([2.0, math.inf], [1.0, math.nan, math.nan, math.nan], EN)
    assert "reference: first inf/nan (epoch 2)" not in texts(parsed(svg)), "the same epoch as the student's inf"
    assert "reference: first inf/nan (epoch 2)" in texts(parsed(loss_curve_svg([2.0, 1.0], [1.0, math.nan], EN)))


def test_the_reference_is_dashed_over_the_students_curve():
    paths = parsed(loss_curve_svg([3.0, 2.0, 1.0], [3.0, 2.0, 1.0], EN)).findall(f"{SVG}path")
    assert [p.get("stroke-dasharray") is not None for p in paths] == [False, True], "the reference drawn last"
    assert paths[0].get("d") == paths[1].get("d")


def test_log_axes_are_labelled_in_powers_of_ten_and_linear_ones_in_nice_steps():
    root = parsed(loss_curve_svg(diverging(), [], EN))  # 48.6 to 3e35: every fifth power of ten
    powers = [(t.text, t.find(f"{SVG}tspan").text) for t in root.iter(f"{SVG}text") if t.find(f"{SVG}tspan") is not None]
    assert powers == [("10", str(k)) for k in range(5, 40, 5)] and {"1", "10000"} & set(texts(root)) == {"1"}
    assert "0" in texts(parsed(loss_curve_svg([0.5] * 30 + [0.0, 1.7e308, math.nan], [1.0, 0.5], EN))), "symlog"
    linear = texts(parsed(loss_curve_svg(list(13.6 * np.exp(-np.arange(30) / 8) + 0.9), [], EN)))
    assert {"2.5", "5.0", "7.5", "10.0", "12.5", "0", "10", "20", "30"} <= set(linear), linear
    assert Scale("linear", 0.0, 1e9).ticks()[1][1] == "2e+08" and Scale("linear", -1.0, 1.0).ticks()[0][1] == "-1.0"


@pytest.mark.parametrize("matrix, vmin, vmax", [
    ([[0.0, 1.7e308], [-1.7e308, math.nan]], None, None),
    ([[math.nan, math.nan]], None, None),
    ([[math.inf, -math.inf]], -1, 1),
    ([[0.5]], 0.5, 0.5),
    ([[]], None, None),
    (np.random.default_rng(0).normal(size=(1, 10_000)).tolist(), -1, 1),
])
def test_a_heat_map_of_any_values_is_well_formed(matrix, vmin, vmax):
    parsed(heatmap_svg(matrix, [], [], vmin, vmax, "row", "column"))


def test_a_malformed_heat_map_raises_so_that_a_ta_looks():
    with pytest.raises(ValueError):
        heatmap_svg("not a matrix", [], [], None, None)
    with pytest.raises(ValueError):
        heatmap_svg([1.0, 2.0], [], [], None, None)


def test_labels_from_a_students_values_cannot_inject_markup():
    hostile = '</text><script>alert(1)</script>&"\x00\ud800'
    root = parsed(heatmap_svg([[0.1, 0.2]], [hostile], [hostile, "b"], 0, 1, hostile, hostile))
    assert not list(root.iter(f"{SVG}script"))
    assert '</text><script>alert(1)</script>&"' in texts(root), "shown as text, the characters XML forbids left out"


def test_cells_are_labelled_in_the_colour_that_reads_on_them():
    root = parsed(heatmap_svg([[0.0, 1.0], [0.5, -1.0]], list("ab"), list("xy"), -1, 1, "from", "to"))
    colour = {"".join(t.itertext()): t.get("fill") for t in root.iter(f"{SVG}text")}
    assert colour["1.00"] == "white" and colour["-1.00"] == "white" and colour["0.00"] == "black"
    assert {"a", "b", "x", "y", "from", "to"} <= set(colour), "tick labels and both titles"
    many = texts(parsed(heatmap_svg(np.full((11, 10), 0.25).tolist(), [], [], 0, 1)))
    assert "0.25" not in many, "over 100 cells are not labelled"


def test_colours_are_matplotlibs():
    matplotlib = pytest.importorskip("matplotlib")
    at = np.linspace(0, 1, 101)
    for stops, name in ((BWR, "bwr"), (BLUES, "Blues")):
        assert np.abs(colours(stops, at) - matplotlib.colormaps[name](at)[:, :3]).max() < 0.01, name


def test_full_marks_fall_in_the_histograms_last_bin():
    bars = [r for r in parsed(histogram_svg([10.0] * 3 + [0.0], 10.0, EN)).iter(f"{SVG}rect")
            if r.get("fill") == "#1a73e8"]
    assert len(bars) == 2
    first, last = sorted(bars, key=lambda r: float(r.get("x")))
    assert float(last.get("height")) == pytest.approx(3 * float(first.get("height")), rel=1e-3)


def test_figures_cost_milliseconds_and_no_matplotlib():
    code = ("import sys, grader.cli, grader.report.plots as p; from grader.report.i18n import Text; "
            "p.loss_curve_svg([1.0, 2.0], [1.0], Text('ko')); p.heatmap_svg([[1.0]], [], [], None, None); "
            "p.histogram_svg([1.0], 2.0, Text('ko')); print('matplotlib' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout == "False\n"
    losses, matrix = diverging(), np.random.default_rng(0).uniform(-1, 1, (5, 5)).tolist()
    start = time.process_time()
    for _ in range(10):
        loss_curve_svg(losses, losses, KO)
        heatmap_svg(matrix, list("abcde"), list("abcde"), -1, 1)
    assert (time.process_time() - start) / 10 < 0.02, "matplotlib took 0.2-0.4 s for these two"
