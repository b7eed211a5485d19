"""The claim's parts: tested parts Holm-adjusted together, threshold parts by their rule, one verdict rule."""

import pytest

from pretraining.analysis.stats import paired_difference
from pretraining.book import claims
from pretraining.book.claims import ALPHA, decide, from_test, part, verdict


def _t(key, p, direction=True):
    return from_test(key, f"claim {key}", {"test": "wilcoxon", "p": p, "n": 10, "effect": 0.5}, "evidence",
                  direction=direction, ci95=(0.1, 0.9))


def test_holm_over_the_tested_parts_decides_them():
    parts = decide([_t("a", 0.01), _t("b", 0.04), _t("c", 0.03), _t("d", 0.005),
                    part("e", "a threshold", True, "gain 5 > 3"), part("f", "not run", None, "needs depth 4")])
    assert [p.p_holm for p in parts][:4] == pytest.approx([0.03, 0.06, 0.06, 0.02]) and parts[4].p_holm is None
    assert [p.status for p in parts] == ["holds", "fails", "fails", "holds", "holds", "not tested"]
    # raw p below alpha but Holm-adjusted above it: provisionally held, finally fails
    assert _t("b", 0.04).status == "holds" and parts[1].status == "fails"
    assert verdict(parts) == "partly supported"


def test_a_significant_effect_in_the_wrong_direction_fails():
    (p,) = decide([_t("a", 1e-6, direction=False)])
    assert p.status == "fails" and p.p_holm == pytest.approx(1e-6)


def test_one_tested_part_is_not_adjusted_and_threshold_parts_are_untouched():
    a, b = decide([_t("a", 0.02), part("b", "x", False, "overlap 0.3 > 0.1", effect=0.3)])
    assert a.p_holm == pytest.approx(0.02) and a.status == "holds"
    assert b.p is None and b.p_holm is None and b.status == "fails" and b.test == "threshold"


def test_claim_part_has_exactly_the_results_keys():
    (a,) = decide([_t("a", 0.01)])
    assert a.claim_part() == {"part": "a", "statement": "claim a", "test": "wilcoxon", "effect": 0.5,
                              "ci95": [0.1, 0.9], "p": 0.01, "p_holm": 0.01, "n": 10, "holds": True}
    nt = part("b", "y", None, "only 2 seeds").claim_part()
    assert nt["holds"] is None and nt["test"] is None and set(nt) == set(a.claim_part())


def test_verdict_rule_and_bad_parts():
    assert verdict([part("a", "x", None, "n")]) == "inconclusive"
    assert verdict([part("a", "x", True, "e"), part("b", "y", None, "n")]) == "supported"
    assert verdict([part("a", "x", False, "e")]) == "not supported"
    with pytest.raises(ValueError, match="distinct"):
        verdict([part("a", "x", True, "e"), part("a", "y", True, "e")])
    with pytest.raises(ValueError, match="status='maybe' is not allowed"):
        claims.Part("a", "x", "maybe", "e")
    with pytest.raises(TypeError, match="holds=1 is not allowed"):
        part("a", "x", 1, "e")
    assert 0 < ALPHA < 1


# ------------------------------------------------------------------------- paired parts
def test_too_few_pairs_names_the_bar_and_the_smallest_p():
    assert claims.too_few_pairs(claims.MIN_PAIRS) is None and claims.too_few_pairs(400) is None
    assert claims.too_few_pairs(2) == ("with 2 paired seeds the part is not testable at this scale (a paired test "
                                       "needs at least 8; with 2 the smallest possible two-sided signed-rank p is 0.5)")
    assert claims.too_few_pairs(7, "runs").startswith("with 7 paired runs the part is not testable")
    assert "with 7 the smallest possible two-sided signed-rank p is 0.016" in claims.too_few_pairs(7)
    assert claims.too_few_pairs(1, "runs").startswith("with 1 paired run the part")
    with pytest.raises(ValueError, match="n=-1 is not allowed"):
        claims.too_few_pairs(-1)


UP = [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08]


def test_paired_part_is_decided_by_the_wilcoxon_test_in_the_claims_direction():
    d = paired_difference(UP)
    p = claims.paired("a", "x helps", d, "per seed, x minus y", extra=1.5)
    assert p.status == claims.HOLDS and p.test == "wilcoxon" and p.p == pytest.approx(2 / 256) and p.n == 8
    assert p.effect == pytest.approx(0.045) and p.ci95 == pytest.approx(tuple(d["ci95"])) and p.direction is True
    assert p.evidence == "per seed, x minus y"
    assert p.numbers == {"extra": 1.5, "mean_difference": d["effect"], "median_difference": d["median"],
                         "rank_biserial": 1.0, "wilcoxon_method": "exact"}
    # the part's further condition, and the direction of the effect, can each make it fail
    assert claims.paired("a", "x helps", d, "e", also=False).status == claims.FAILS
    down = claims.paired("a", "x helps", paired_difference([-v for v in UP]), "e")
    assert down.status == claims.FAILS and down.direction is False and down.p == pytest.approx(2 / 256)
    mixed = claims.paired("a", "x helps", paired_difference([-0.001] * 7 + [0.2]), "e")
    assert mixed.effect > 0 and mixed.direction is False and mixed.status == claims.FAILS
    (decided,) = decide([p])
    assert decided.status == claims.HOLDS and decided.p_holm == pytest.approx(p.p)


def test_paired_part_with_too_few_pairs_is_not_tested_but_keeps_its_numbers():
    d = paired_difference(UP[:7])
    p = claims.paired("b", "x helps", d, "per run, x minus y", unit="runs", runs_positive=7)
    assert p.status == claims.NOT_TESTED and p.holds is None and p.p is None and p.test is None
    assert p.evidence == "per run, x minus y; " + claims.too_few_pairs(7, "runs")
    assert p.n == 7 and p.effect == pytest.approx(0.04) and p.ci95 == pytest.approx(tuple(d["ci95"]))
    assert p.numbers["runs_positive"] == 7 and p.numbers["mean_difference"] == d["effect"]
    one = claims.paired("b", "x helps", paired_difference([0.3]), "e")
    assert one.status == claims.NOT_TESTED and one.ci95 is None and "with 1 paired seed the part" in one.evidence
    (decided,) = decide([p])
    assert decided.p_holm is None and verdict([decided]) == "inconclusive"


def test_paired_text():
    d = paired_difference(UP)
    assert claims.paired_text(d) == ("mean +0.0450, 95 % t interval over seeds +0.0245 to +0.0655, "
                                     "positive in 8 of 8 seeds")
    assert claims.paired_text(d, "+.3f", "runs", interval=False, p=True) == \
        "mean +0.045, positive in 8 of 8 runs, Wilcoxon signed-rank p = 0.0078"
    assert claims.paired_text(d, interval=False, points=True) == "mean +0.0450 (+4.50 points), positive in 8 of 8 seeds"
    # with fewer than MIN_PAIRS pairs no p is shown (it could never have been small)
    few = claims.paired_text(paired_difference(UP[:7]), p=True)
    assert "Wilcoxon" not in few and few.endswith("positive in 7 of 7 seeds")
    assert claims.paired_text(paired_difference([0.3]), unit="runs") == "mean +0.3000, positive in 1 of 1 run"
    # enough pairs, but too few of them differ at all for p to reach ALPHA
    flat = paired_difference([0.0] * 4 + [0.01] * 4)
    assert claims.paired_text(flat, interval=False).endswith(
        "positive in 4 of 8 seeds; only 4 of the 8 seeds differ at all, so p cannot go below 0.12")
