"""A Korean page says everything in Korean: the reference, every known mistake, the bundled
samples, the untouched notebook and a few broken notebooks of every assignment are graded, and
their Korean feedback pages and the TA's Korean summary of them may hold English only inside
code (the student's own code, tracebacks, names) and in the gradebook's status words."""

import html
import re
from dataclasses import replace

import nbformat
import pytest

from conftest import ROOT
from grader.check.checks import load_checks
from grader.check.forms import form_notebook, load_forms
from grader.check.reference import reference_notebook
from grader.config import load_assignment
from grader.report.document import to_html
from grader.report.feedback import feedback_page
from grader.report.i18n import Text
from grader.report.summary import RunSettings, summary_page
from grader.said import Said, in_language, joined, say
from notebooks import student_notebook

KO = Text("ko")
CODE = re.compile(r"<pre\b.*?</pre>|<code\b.*?</code>|<script\b.*?</script>|<style\b.*?</style>|<img\b[^>]*>", re.S)
ELEMENT = re.compile(r"</?(?:p|li|td|th|h\d|title)\b[^>]*>")  # one line of text per paragraph, item, cell, heading
TAG = re.compile(r"<[^>]+>")
HANGUL = re.compile(r"[가-힣]")
WORD = re.compile(r"(?<![\w.])[A-Za-z]{2,}(?![\w.])")  # two letters or more, not part of an identifier
# Four English words in a row (numbers may come between) is a sentence nobody translated;
# names, layer types and formulas are shorter runs.
ENGLISH_RUN = re.compile(r"\b[A-Za-z]{2,}(?:[ ,;:'()#\d.-]+[A-Za-z]{2,}\b){3,}")


def english_sentences(page: str) -> list[str]:
    """Runs of English words in a page's text outside code, and every paragraph, item, table cell
    or heading that holds two English words or more and no Hangul ("cell 3 (`...`) raised `...`")."""
    lines = html.unescape(TAG.sub(" ", ELEMENT.sub("\n", CODE.sub(" ", page)))).splitlines()
    found = [m.group(0) for line in lines for m in ENGLISH_RUN.finditer(line)]
    return found + [" ".join(line.split()) for line in lines
                    if not HANGUL.search(line) and len(WORD.findall(line)) >= 2 and not ENGLISH_RUN.search(line)]


def test_the_detector_finds_an_untranslated_sentence_and_ignores_code():
    assert english_sentences("<p>점수: your notebook never defined it</p>") == ["your notebook never defined it"]
    assert english_sentences("<p>`rnn` maps 4 inputs to 3 hidden nodes</p>") == ["maps 4 inputs to 3 hidden nodes"]
    assert english_sentences("<td>cell 8 (<code>rnn = ???</code>) raised <code>SyntaxError</code></td>"
                             "<td>ok (끝까지 실행됨)</td><td>no_zero_grad</td>") == ["cell 8 ( ) raised"]
    assert english_sentences("<p>층: Embedding → Tanh → Linear</p><pre>Traceback (most recent call last)</pre>"
                             "<p><code>torch.optim.SGD(net.parameters(), lr=0.1)</code></p>") == []


def test_said_text_keeps_its_korean_through_joins_and_falls_back_to_english():
    both = joined([say("a", "가"), say("b", "나")])
    assert isinstance(both, Said) and (str(both), both.ko) == ("a; b", "가; 나")
    assert not isinstance(joined([say("a", "가"), "b"]), Said), "one untranslated part: no Korean for the whole"
    assert in_language(both, "ko") == "가; 나" and in_language("plain", "ko") == "plain"


def broken_notebooks(assignment: str) -> dict[str, nbformat.NotebookNode]:
    """The untouched notebook, one whose answer cell raises, and one that defines nothing."""
    untouched = student_notebook(assignment)
    raising = nbformat.from_dict(untouched)
    answer = next(c for c in raising.cells if "answer" in c.metadata.get("tags", []))
    answer.source = "raise ValueError('x')"
    empty = nbformat.from_dict(untouched)
    empty.cells = [c for c in empty.cells if c.cell_type == "markdown"]
    return {"untouched": untouched, "raising": raising, "empty": empty}


ASSIGNMENTS = sorted(p.parent.name for p in (ROOT / "assignments").glob("*/assignment.toml"))


def test_every_assignment_is_covered():
    assert {"regression_ab", "poly_lr", "abcde", "rnn_abacad"} <= set(ASSIGNMENTS)


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_every_title_and_check_description_has_its_korean(name):
    """Descriptions too short for the sentence detector ("sizes") must be translated as well."""
    assignment = load_assignment(ROOT, name)
    assert assignment.title_ko, f"{name}: assignment.toml has no title_ko"
    untranslated = [c.name for c in load_checks(assignment) if not c.description_ko]
    assert not untranslated, f"{name}: checks without ko=: {untranslated}"


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_korean_pages_and_summary_hold_no_untranslated_sentence(name, grade):
    assignment = load_assignment(ROOT, name)
    reference = reference_notebook(assignment)
    submissions = {"reference": reference}
    submissions |= {m.name: form_notebook(reference, m) for m in load_forms(assignment).mistakes}
    submissions |= {p.stem: p for p in sorted((ROOT / "submissions" / name).glob("*.ipynb"))}
    submissions |= broken_notebooks(name)
    reports = grade(name, submissions)
    english = {}
    for label, report in reports.items():
        page = to_html(*feedback_page(report, assignment, [1.0, 0.5], KO), "ko")
        found = english_sentences(page)
        if found:
            english[label] = found
    # Students named as an LMS names them (a label such as "raising, untouched" would read as English).
    students = [replace(report, student=f"2024{i:04d}") for i, report in enumerate(reports.values())]
    settings = RunSettings("2026-03-02T10:00:00+09:00", "0.1.0", "2.13.0+cpu", "cpu", True, 2, "ko")
    summary = to_html(*summary_page(assignment, students, settings, {r.file: r.student for r in students}, KO), "ko")
    if english_sentences(summary):
        english["summary"] = english_sentences(summary)
    assert not english, english
