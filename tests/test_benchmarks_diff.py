"""benchmarks.diff: the corpus table on two cases, without PaDiff (no timing assertions)."""

import pytest

pytestmark = pytest.mark.cross


def test_the_corpus_table_names_verdicts_and_rightness():
    pytest.importorskip("torch")
    pytest.importorskip("paddle")
    from benchmarks.diff import corpus_section, corpus_table
    from benchmarks.padiff import load_cases

    cases = {c.name: c for c in load_cases()}
    section = corpus_section([cases["right_relu"], cases["wrong_pool"]], padiff=False, log=lambda *a, **k: None)
    right, wrong = section["rows"]
    assert right["diff"]["verdict"] == "equal" and right["diff"]["right"]
    assert (wrong["diff"]["verdict"], wrong["diff"]["layer"], wrong["diff"]["cause"], wrong["diff"]["right"]) == ("different", "features.5", "layer", True)
    assert all(r["diff"]["seconds"] > 0 and r["diff"]["wall"] >= r["diff"]["seconds"] for r in section["rows"])
    assert section["tally"] == {"cases": 2, "diff_right": 2} and "PaDiff left out" in section["note"]
    table = corpus_table(section)
    assert "| wrong_pool | features.5 | different features.5 (layer) | yes |" in table and "PaDiff default" not in table


def test_a_padiff_layer_counts_only_when_it_names_the_expected_torch_layer():
    from benchmarks.diff import is_right
    from benchmarks.padiff import load_cases

    case = next(c for c in load_cases() if c.name == "wrong_pool")
    assert is_right(case, "different", "MaxPool2d vs AvgPool2D (features.5)")
    assert not is_right(case, "different", "Net (the whole model)")
    assert not is_right(case, "different", "features.50") and not is_right(case, "equal", None)
