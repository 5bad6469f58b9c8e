"""`grader probe`: the probes are edits of the reference, the candidate seed a variant."""

import asyncio

import pytest
import torch

from grader.author.probe import distance_table, probe_notebooks, with_candidate_seed
from grader.author.proof import Case
from grader.check.checks import CheckResult
from grader.check.reference import reference_notebook
from grader.config import load_assignment
from grader.grade import GradeReport
from grader.run.runs import GradeOptions, Runner

from conftest import ROOT


def test_probes_are_float64_and_one_epoch_either_side_of_the_task():
    assignment = load_assignment(ROOT, "rnn_abacad")
    notebooks = probe_notebooks(assignment)
    assert list(notebooks) == ["float64", "199 epochs", "201 epochs"]
    training = next(c for c in notebooks["201 epochs"].cells if c.get("id") == "training")
    assert "for epoc in range(201):" in training.source
    reference = reference_notebook(assignment)
    float64 = notebooks["float64"]
    assert "<grader-float64>" in float64.cells[0].source, "float64 from the first cell on"
    assert [c.source for c in float64.cells[1:]] == [c.source for c in reference.cells], "the reference as it is"


@pytest.mark.parametrize("name", ["rnn_abacad", "regression_ab"])
def test_the_float64_probe_computes_the_task_s_own_data_and_start_in_float64(name, tmp_path):
    """rnn_abacad casts its data with `.float()` and draws its weights in `nn.init`;
    regression_ab draws its data with `rand`/`randn`: float64 must keep all of them."""
    assignment = load_assignment(ROOT, name)
    runner = Runner(assignment, reference_notebook(assignment), GradeOptions("cpu", tmp_path, 2))

    async def both():
        runs = [runner.run(nb, assignment.variants[0])
                for nb in (reference_notebook(assignment), probe_notebooks(assignment)["float64"])]
        return [result for _, result in await asyncio.gather(*runs)]

    reference, float64 = both_runs = asyncio.run(both())
    for result in both_runs:
        assert result.status == "ok", (result.problems, result.capture_error)
    names = [n for n in assignment.capture if isinstance(reference.captured[n], torch.Tensor)]
    modules = [n for n in assignment.capture if n not in names and not isinstance(reference.captured[n], float)]
    dtypes = {n: float64.captured[n].dtype for n in names}
    dtypes |= {f"{n}.{k}": t.dtype for n in modules for k, t in float64.captured[n].state_dict.items()}
    assert set(dtypes.values()) == {torch.float64}, dtypes
    start, float64_start = reference.captured.trace.starting_parameters, float64.captured.trace.starting_parameters
    assert (start is None) == (float64_start is None)
    if start is not None:
        # Drawn weights come out the same; typed-in ones (0.7) are the float64 number, not float32's.
        assert all(torch.allclose(a.double(), b, rtol=1e-7, atol=0) for a, b in zip(start, float64_start))
    first, first64 = reference.captured.trace.losses[0], float64.captured.trace.losses[0]
    assert first64 == pytest.approx(first, rel=1e-6), "the same data: the first loss differs by rounding only"
    assert first64 != first, "computed in float64, not float32"


def test_the_table_keeps_every_column_under_its_header():
    def case(kind, name, distance, status="ok"):
        checks = [CheckResult("probabilities", variant, "", 1, 1, "pass", closeness=[distance, 1e-4])
                  for variant in ("public", "hidden")]
        return Case(kind, name, None, report=GradeReport(name, name, status, checks=checks))

    header, *rows = distance_table([case("reference", "reference solution", 0.0),
                                    case("probe", "float64", 1.6e-5), case("mistake", "lr_0.01", 0.65)])
    assert header.split() == ["answer", "probabilities", "(tol", "0.0001)", "probabilities[hidden]", "(tol", "0.0001)"]
    assert rows[1].split() == ["prob", "float64", "1.6e-05", "ok", "1.6e-05", "ok"]
    assert rows[2].split()[-2:] == ["0.65", "LOST"]
    assert {len(line) for line in [header, *rows]} == {len(header)}, "each cell ends where its header ends"


def test_a_candidate_seed_replaces_every_hidden_variant_by_one_mapping_the_public_seed():
    assignment = with_candidate_seed(load_assignment(ROOT, "rnn_abacad"), 1234)
    assert [(v.name, v.seeds) for v in assignment.variants] == [("public", {}), ("candidate_1234", {"4": 1234})]
