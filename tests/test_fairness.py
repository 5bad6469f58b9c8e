"""The pieces of the fairness policy, without kernels: paying only confirmed points,
starting points and replays, values unchanged by hidden data, declared forms, margins."""

import json

import nbformat
import numpy as np
import pytest
import torch

from conftest import ROOT
from grader.author.proof import Case, hard_coded_source, judge, margins
from grader.check.captured import Captured
from grader.check.checks import CheckResult, NotJudged, check, run_check, settle
from grader.check.compare import Mismatch, assert_all_close, recording_closeness
from grader.check.diagnose import unchanged_by_hidden_data
from grader.check.forms import Mistake, form_notebook, load_forms
from grader.check.replay import Incomparable, align, start_to_replay
from grader.config import PUBLIC_VARIANT, load_assignment
from grader.errors import ConfigError
from grader.grade import GradeReport


def declared(**kwargs):
    def body(student):
        pass
    body.__name__ = kwargs["name"]  # the description: what a "not graded" message names
    return check(**kwargs)(body).__grader_check__


def result(name, variant, status, points=1.0):
    return CheckResult(name, variant, name, points if status == "pass" else 0.0, points, status)


def test_public_points_need_every_hidden_run_to_agree():
    values = declared(points=3, variants="all", name="values")
    results = [result("values", PUBLIC_VARIANT, "pass", 3), result("values", "hidden", "fail", 3)]
    settle([values], results)
    assert results[0].points == 0 and results[0].status == "fail" and "other data" in results[0].feedback


def test_confirmation_can_be_turned_off_and_is_off_for_public_only_checks():
    loose = declared(points=1, variants="all", name="loose", confirm_hidden=False)
    public_only = declared(points=1, name="public_only")
    assert not public_only.confirm_hidden
    results = [result("loose", PUBLIC_VARIANT, "pass"), result("loose", "hidden", "fail")]
    settle([loose], results)
    assert results[0].points == 1


def test_requirements_chain_and_say_why():
    values = declared(points=1, variants="all", name="values")
    curve = declared(points=1, name="curve", requires=["values"])
    trace = declared(points=1, name="trace", requires=["curve"])
    results = [result("values", PUBLIC_VARIANT, "pass"), result("values", "hidden", "fail"),
               result("curve", PUBLIC_VARIANT, "pass"), result("trace", PUBLIC_VARIANT, "pass")]
    settle([values, curve, trace], results)
    assert [r.points for r in results] == [0, 0, 0, 0]
    assert results[2].status == results[3].status == "not-judged"
    assert "values" in results[2].feedback and "curve" in results[3].feedback


def test_not_judged_and_missing_values_are_one_cause_not_a_failure():
    def needs_reference(student, reference):
        raise NotJudged("the model differs")
    c = check(points=2)(needs_reference).__grader_check__
    outcome = run_check(c, PUBLIC_VARIANT, {"student": None, "reference": None})
    assert (outcome.status, outcome.points, outcome.feedback) == ("not-judged", 0.0, "the model differs")
    incomparable = Incomparable("sizes differ")
    with pytest.raises(NotJudged, match="sizes differ"):
        incomparable["net"]


def test_a_requirement_must_name_a_declared_check(tmp_path):
    folder = tmp_path / "assignments" / "demo"
    folder.mkdir(parents=True)
    (folder / "assignment.toml").write_text('capture = ["x"]\n')
    (folder / "checks.py").write_text("from grader.check import check\n\n"
                                      "@check(points=1, requires=['nothing'])\ndef one(student):\n    pass\n")
    nbformat.write(nbformat.v4.new_notebook(), folder / "demo.ipynb")
    (tmp_path / "reference").mkdir()
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "reference" / "demo.ipynb")
    from grader.check.checks import load_checks
    with pytest.raises(ConfigError, match="requires unknown check"):
        load_checks(load_assignment(tmp_path, "demo"))


def capture_with_start(*start: torch.Tensor, steps: int = 30, values: dict | None = None) -> Captured:
    arrays = {"trace_losses": np.arange(3, dtype=np.float64)}
    entries = []
    for tensor in start:
        key = f"s{len(arrays)}"
        arrays[key] = tensor.numpy()
        entries.append({"kind": "tensor", "array": key, "dtype": str(tensor.dtype).replace("torch.", ""),
                        "shape": list(tensor.shape), "device": "cpu"})
    record = {"backward_calls": 3, "losses": "trace_losses", "optimizers": [
        {"class": "SGD", "steps": steps, "parameters": 4, "hyperparameters": {"lr": 0.1}, "first_step": None,
         "last": None, "initial": entries}]}
    captured_values = {}
    for name, tensor in (values or {}).items():
        arrays[name] = tensor.numpy()
        captured_values[name] = {"kind": "tensor", "array": name, "dtype": "float32", "shape": list(tensor.shape),
                                 "device": "cpu"}
    return Captured(values=captured_values, arrays=arrays, trace_record=record)


A0, A1 = torch.tensor([0.5]), torch.tensor([[0.5]])
B0, B1 = torch.tensor([0.7]), torch.tensor([[0.7]])


def test_the_same_start_in_another_order_needs_no_replay():
    reference = capture_with_start(A0, A1, B0, B1)
    assert start_to_replay(capture_with_start(A0, B0, A1, B1), reference) is None
    assert [t is e for t, e in zip(align([A0, B0, A1, B1], [A0, A1, B0, B1]), [A0, A1, B0, B1])] == [True] * 4


def test_another_start_is_replayed_in_the_reference_order_and_dtype():
    reference = capture_with_start(A0, A1, B0, B1)
    start = start_to_replay(capture_with_start(B0.double() + 0.1, A1, A0, B1), reference)
    assert [t.dtype for t in start] == [torch.float32] * 4
    assert [float(t.reshape(())) for t in start] == pytest.approx([0.8, 0.5, 0.5, 0.7])


@pytest.mark.parametrize("start, why", [
    ((torch.tensor([0.5, 0.5]), A1, B0, B1), "shapes"),
    ((torch.tensor([float("nan")]), A1, B0, B1), "inf or nan"),
    ((torch.tensor([1e6]), A1, B0, B1), "far larger"),
])
def test_a_start_that_could_not_be_one_is_not_replayed(start, why):
    outcome = start_to_replay(capture_with_start(*start), capture_with_start(A0, A1, B0, B1))
    assert isinstance(outcome, Incomparable) and why in outcome.reason


def test_values_unchanged_by_the_hidden_data_are_found():
    reference = {PUBLIC_VARIANT: capture_with_start(A0, values={"w": torch.tensor([1.0, 2.0])}),
                 "hidden": capture_with_start(A0, values={"w": torch.tensor([1.5, 2.5])})}
    typed = {PUBLIC_VARIANT: capture_with_start(A0, values={"w": torch.tensor([1.0, 2.0])}),
             "hidden": capture_with_start(A0, values={"w": torch.tensor([1.0, 2.0])})}
    computed = {PUBLIC_VARIANT: capture_with_start(A0, values={"w": torch.tensor([1.0, 2.0])}),
                "hidden": capture_with_start(A0, values={"w": torch.tensor([1.4, 2.6])})}
    # The loss curves are equal in all of these, and so are the reference's: they prove nothing.
    assert unchanged_by_hidden_data(typed, reference, ("w",)) == ["w"]
    assert unchanged_by_hidden_data(computed, reference, ("w",)) == []
    assert unchanged_by_hidden_data({PUBLIC_VARIANT: None, "hidden": None}, reference, ("w",)) == []


def test_every_comparison_is_recorded_even_after_a_failure():
    with recording_closeness() as closeness:
        with pytest.raises(Mismatch) as raised:
            assert_all_close({"a": (torch.tensor([1.0]), torch.tensor([1.1])),
                              "b": (torch.tensor([2.0]), torch.tensor([2.0005]))}, atol=1e-3, rtol=0)
    assert "a:" in raised.value.message and "b:" not in raised.value.message
    assert [pair for pairs in closeness.pairs for pair in pairs] == pytest.approx([0.1, 1e-3, 5e-4, 1e-3], rel=1e-3)
    assert closeness.worst() == pytest.approx([0.1, 1e-3], rel=1e-3)


def test_margins_show_the_worst_correct_form_and_the_nearest_mistake():
    def graded(kind, name, closeness, status):
        report = GradeReport(name, name, "ok", checks=[CheckResult("values", PUBLIC_VARIANT, "values", 0, 1, status,
                                                                   closeness=closeness)])
        return Case(kind, name, None, report=report)
    cases = [graded("reference", "reference", [1e-7, 1e-4], "pass"),
             graded("equivalent", "float64", [5e-7, 1e-4], "pass"),
             graded("mistake", "31 epochs", [3.8e-3, 1e-4], "fail"),
             graded("mistake", "lr", [2.0, 1e-4], "fail"),
             graded("mistake", "elsewhere", [0.0, 0.0], "not-judged")]
    for case in cases[2:]:
        case.mistake = Mistake(case.name, loses=("values",) if case.name != "elsewhere" else ("other",))
    assert margins(cases) == ["values: correct forms ≤ 5e-07 (0.005× the tolerance 0.0001 there; float64) "
                              "nearest mistake 0.0038 (38× the tolerance 0.0001 there; 31 epochs) ✓"]


def test_a_mistake_must_lose_exactly_what_it_declares_and_be_named():
    mistake = Mistake("no_zero_grad", loses=("values",), cause_en="no zero_grad")
    report = GradeReport("m", "m", "ok", checks=[CheckResult("values", PUBLIC_VARIANT, "v", 0, 1, "fail"),
                                                 CheckResult("other", PUBLIC_VARIANT, "o", 0, 1, "fail", "why")])
    case = Case("mistake", "no_zero_grad", None, mistake, report)
    judge(case)
    assert len(case.problems) == 2 and "other should keep" in case.problems[0] and "not recognised" in case.problems[1]


def test_forms_are_edits_of_the_reference_that_never_touch_a_locked_cell():
    assignment = load_assignment(ROOT, "regression_ab")
    forms = load_forms(assignment)
    assert len(forms.equivalent) >= 8 and len(forms.mistakes) >= 6
    reference = nbformat.read(assignment.reference_notebook, as_version=4)
    edited = form_notebook(reference, next(m for m in forms.mistakes if m.name == "31_epochs"))
    assert "range(31)" in next(c.source for c in edited.cells if c.get("id") == "training")
    with pytest.raises(ConfigError, match="no editable cell"):
        form_notebook(reference, Mistake("bad", replace={"torch.manual_seed(43052)": "torch.manual_seed(1)"}))


@pytest.mark.parametrize("name", ["abcde", "poly_lr", "regression_ab"])
def test_every_assignment_declares_enough_forms_naming_real_checks(name):
    from grader.check.checks import load_checks
    assignment = load_assignment(ROOT, name)
    forms, checks = load_forms(assignment), {c.name for c in load_checks(assignment)}
    assert len(forms.equivalent) >= 8 and len(forms.mistakes) >= 6
    for mistake in forms.mistakes:
        assert set(mistake.loses) <= checks, mistake.name
        assert mistake.cause and mistake.cause_en, mistake.name


def test_a_hard_coded_copy_types_in_every_value_and_can_fake_a_loop():
    captured = capture_with_start(A0, values={"w": torch.tensor([1.0, 2.0])})
    source = hard_coded_source(captured, ("w",), fake_loop=True)
    assert "w = torch.tensor([1.0, 2.0], dtype=torch.float32)" in source
    assert "torch.optim.SGD([_dummy], lr=0.1)" in source and "range(30)" in source
    namespace = {}
    exec(source, namespace)
    assert torch.equal(namespace["w"], torch.tensor([1.0, 2.0]))
    json.dumps(source)


def trace(losses, steps, lr=0.1, backward_calls=None):
    from grader.check.captured import OptimizerRecord, Trace
    optimizers = [OptimizerRecord("SGD", steps, 4, {"lr": lr}, {"lr": lr}, None)] if steps else []
    return Trace(np.asarray(losses, dtype=float), steps if backward_calls is None else backward_calls, optimizers)


def test_the_trace_names_the_cause_a_student_can_act_on():
    from grader.check.causes import trace_causes
    reference = trace([2.0, 1.5], 30)
    assert trace_causes(trace([2.0, 1.5], 30), reference) == []
    [summed] = trace_causes(trace([2000.0, 3.0], 30), reference)
    assert "1000× the reference's" in summed and "sum instead of mean" in summed and "1000배" in summed.ko
    assert trace_causes(trace([2.0, 1.5], 31), reference) == ["31 steps, the task trains for 30"]
    assert trace_causes(trace([2.0], 30, lr=0.01), reference) == [
        "the optimizer stepped with lr 0.01; the task uses lr 0.1"]
    [no_step] = trace_causes(trace([2.0] * 30, 0, backward_calls=30), reference)
    assert "no optimizer ever took a step" in no_step
