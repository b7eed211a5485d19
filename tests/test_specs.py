"""Parameter specs: types, ranges, defaults, rules, unknown and missing names, one-line messages."""

import math
import types

import pytest

from pretraining.book import specs
from pretraining.book.specs import (
    COMMON, Bool, ChapterSpec, Choice, Float, FloatList, Int, IntList, Param, ParameterError, SpecNotFound,
    Str, load_spec, not_allowed, user_names,
)


@pytest.mark.parametrize("spec, good, bad", [
    (Int(min=1), [1, 5, 10**9], [0, -3, 1.0, True, "3", None]),
    (Int(min=0, max=3), [0, 3], [-1, 4]),
    (Float(gt=0), [1e-9, 2, 3.5], [0, 0.0, -1.0, math.nan, math.inf, True, "1"]),
    (Float(min=0, max=1), [0, 0.0, 1, 0.5], [1.0001, -0.1]),
    (Float(lt=1), [0.999], [1.0]),
    (Bool(), [True, False], [0, 1, "True", None]),
    (Str(), ["x"], ["", 3, None]),
    (Choice("rbm", "dae"), ["rbm", "dae"], ["RBM", "", None, 1]),
    (Choice(1, 2), [1, 2], [1.0, True, "1"]),
    (IntList(min=1, max=8), [[1], [1, 8], (2, 3)], [[], [0], [9], [1, 2.0], [True], 3, "12"]),
    (IntList(min=1, max_len=2), [[1, 2]], [[1, 2, 3]]),
    (FloatList(gt=0), [[0.1, 2]], [[0.0], [math.nan], []]),
])
def test_spec_accepts_good_and_refuses_bad(spec, good, bad):
    for v in good:
        spec.check("x", v)
    for v in bad:
        with pytest.raises(ParameterError):
            spec.check("x", v)


def test_message_names_parameter_value_and_allowed():
    with pytest.raises(ParameterError) as e:
        Int(min=1).check("n_seeds", 0)
    msg = str(e.value)
    assert msg == "n_seeds=0 is not allowed: an integer >= 1"
    assert "\n" not in msg
    with pytest.raises(ParameterError, match=r"^lr=-0\.5 is not allowed: a finite number > 0$"):
        Float(gt=0).check("lr", -0.5)
    with pytest.raises(ParameterError, match=r"^device='gpu' is not allowed: one of 'auto', 'cpu', 'cuda', 'mps'$"):
        COMMON["device"].allowed.check("device", "gpu")
    with pytest.raises(ParameterError, match=r"^depths=\[0, 2\] is not allowed: a list of at least 1 items, "
                                             r"each an integer >= 1 and <= 8$"):
        IntList(min=1, max=8).check("depths", [0, 2])


def test_bool_is_not_an_int_but_int_is_a_float():
    with pytest.raises(ParameterError, match="n=True"):
        Int().check("n", True)
    Float().check("x", 3)


def _namespace(**params):
    """A notebook-like namespace: parameters plus the things a notebook also holds."""
    ns = {"__name__": "__main__", "_i1": "x", "In": [], "Out": {}, "get_ipython": lambda: None,
          "exit": object(), "quit": object(), "book": types.ModuleType("book"), "Int": Int,
          "helper": lambda: 0}
    ns.update(params)
    return ns


def _batch_rule(p):
    return [not_allowed("batch", p["batch"], f"at most n={p['n']}")] if p["batch"] > p["n"] else []


SPEC = ChapterSpec("09_test", claim="c", paper="p", params={
    "n": Param(3, Int(min=1), "networks"),
    "batch": Param(2, Int(min=1), "minibatch size"),
    "lrs": Param([1, 0.5], FloatList(gt=0), "learning rates"),
}, rules=(_batch_rule,))


def test_defaults_are_the_quick_values_in_parameter_order_and_canonical():
    d = SPEC.defaults()
    assert list(d) == ["profile", "device", "precision", "dataset", "seed", "executor", "n", "batch", "lrs"]
    assert d["profile"] == "quick" and d["lrs"] == [1.0, 0.5] and type(d["lrs"][0]) is float


def test_check_returns_canonical_values_in_order():
    got = SPEC.check({**SPEC.defaults(), "lrs": (2, 3), "n": 5})
    assert got["lrs"] == [2.0, 3.0] and got["n"] == 5 and list(got) == list(SPEC.defaults())


def test_problems_lists_every_problem_one_line_each():
    values = {**SPEC.defaults(), "n": 0, "n_seed": 4}
    del values["seed"]
    assert SPEC.problems(values) == [
        "unknown parameter n_seed=4; the parameters are: profile, device, precision, dataset, seed, executor, n, batch, lrs",
        "parameter 'seed' is not defined; declare it in the parameters cell",
        "n=0 is not allowed: an integer >= 1",
    ]
    with pytest.raises(ParameterError, match="^unknown parameter n_seed=4"):
        SPEC.check(values)


def test_rules_run_only_on_individually_valid_values():
    assert SPEC.problems({**SPEC.defaults(), "batch": 4}) == ["batch=4 is not allowed: at most n=3"]
    # a type error is reported, the rule (which would compare a string with an int) is not run
    assert SPEC.problems({**SPEC.defaults(), "batch": "4"}) == ["batch='4' is not allowed: an integer >= 1"]


def test_common_parameters():
    for name, bad in (("dataset", "cifar"), ("profile", "fast"), ("seed", -1), ("device", "gpu")):
        with pytest.raises(ParameterError, match=f"^{name}={bad!r} is not allowed".replace("(", "\\(")):
            SPEC.check({**SPEC.defaults(), name: bad})
    with pytest.raises(ValueError, match="common parameters"):
        ChapterSpec("x", claim="c", paper="p", params={"seed": Param(0, Int(), "s")})


def test_param_checks_its_default_and_help():
    with pytest.raises(ParameterError, match="^default=0 is not allowed: an integer >= 1"):
        Param(0, Int(min=1), "n")
    with pytest.raises(ValueError, match="one non-empty line without '='"):
        Param(1, Int(), "n = number of nets")
    with pytest.raises(TypeError, match="expected a Spec"):
        Param(1, int, "n")


def test_parameters_cell_is_readable_by_papermill():
    cell = SPEC.parameters_cell()
    assert cell.splitlines()[0] == 'profile: str = "quick"  # profile these defaults come from (smoke, quick, paper)'
    assert cell.splitlines()[-1] == "lrs: list = [1.0, 0.5]  # learning rates"
    from papermill.translators import PythonTranslator
    params = PythonTranslator.inspect({"source": cell})
    assert [p.name for p in params] == list(SPEC.defaults())
    assert {p.name: p.default for p in params}["dataset"] == '"mnist-10k"'


def test_user_names_skips_ipython_modules_callables_and_private():
    assert user_names(_namespace(a=1)) == {"a": 1}


def test_traceback_in_ipython_is_one_line():
    err = ParameterError("n=0 is not allowed: an integer >= 1")
    assert err._render_traceback_() == ["ParameterError: n=0 is not allowed: an integer >= 1"]
    assert isinstance(err, ValueError)


def test_load_spec_finds_each_chapter_module_and_refuses_others(monkeypatch):
    assert load_spec("01_pretraining").name == "01_pretraining"
    with pytest.raises(SpecNotFound, match="chapters/07_nothing.ipynb has no chapter module pretraining.chapters.ch07_nothing"):
        load_spec("07_nothing")
    monkeypatch.setenv(specs.CHAPTERS_ENV, "no_such_package")
    with pytest.raises(SpecNotFound, match="no chapter module no_such_package.ch01_pretraining"):
        load_spec("01_pretraining")
