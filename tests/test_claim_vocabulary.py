"""The shared claim vocabulary of memlib.studies.common: checks, their notes, combination and seed agreement."""
import math

import numpy as np
import pytest

from memlib.studies.common import PASSED, Check, all_of, check, held_in, verdict


def test_check_keeps_the_reason_only_when_it_failed():
    assert check(True, "the network did not learn") == Check(True, "")
    failed = check(np.bool_(False), "the network did not learn")
    assert failed.ok is False and failed.why == "the network did not learn"
    assert failed.note() == "; the network did not learn" and failed.note(" — ") == " — the network did not learn"
    assert PASSED.note() == "" and bool(PASSED) and not bool(failed)


def test_a_lazy_reason_is_only_computed_when_needed():
    calls = []

    def why():
        calls.append(1)
        return "undefined"

    assert check(True, why).why == "" and calls == []
    assert check(False, why).why == "undefined" and calls == [1]


def test_a_failed_check_must_say_why():
    with pytest.raises(ValueError, match="reason"):
        Check(False)


def test_all_of_joins_the_failed_reasons_in_order():
    a, b, c = check(False, "A failed"), check(True, "B failed"), check(False, "C failed")
    both = all_of(a, b, c)
    assert not both and both.why == "A failed; C failed"
    assert both.note("; experiment did not work: ") == "; experiment did not work: A failed; C failed"
    assert all_of(b, PASSED) == Check(True, "") and all_of() == Check(True, "")
    assert all_of(a, c, sep=", ").why == "A failed, C failed"


def test_held_in_counts_true_flags():
    assert held_in([True, False, np.True_]) == "held in 2/3 seeds"
    assert held_in([], "(level, seed) pairs") == "held in 0/0 (level, seed) pairs"


def test_verdict_needs_the_condition_and_every_check():
    assert verdict(True) is True
    assert verdict(np.float64(0.9) >= 0.8, PASSED) is True
    assert verdict(True, PASSED, check(False, "x")) is False
    assert verdict(math.nan >= 0.8, PASSED) is False
