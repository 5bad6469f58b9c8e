"""`grader probe`: the probes are edits of the reference, the candidate seed a variant."""

from grader.author.probe import probe_forms, with_candidate_seed
from grader.check.forms import form_notebook
from grader.check.reference import reference_notebook
from grader.config import load_assignment

from conftest import ROOT


def test_probes_are_float64_and_one_epoch_either_side_of_the_task():
    assignment = load_assignment(ROOT, "rnn_abacad")
    forms = {form.name: form for form in probe_forms(assignment)}
    assert list(forms) == ["float64", "199 epochs", "201 epochs"]
    reference = reference_notebook(assignment)
    training = next(c for c in form_notebook(reference, forms["201 epochs"]).cells if c.get("id") == "training")
    assert "for epoc in range(201):" in training.source
    float64 = form_notebook(reference, forms["float64"])
    first_answer = next(i for i, c in enumerate(float64.cells) if c.get("id") == "net")
    assert float64.cells[first_answer - 1].source == "torch.set_default_dtype(torch.float64)"


def test_a_candidate_seed_replaces_every_hidden_variant_by_one_mapping_the_public_seed():
    assignment = with_candidate_seed(load_assignment(ROOT, "rnn_abacad"), 1234)
    assert [(v.name, v.seeds) for v in assignment.variants] == [("public", {}), ("candidate_1234", {"4": 1234})]
