"""Parameter specs: types, ranges, unknown and missing names, one-line messages."""

import math
import types

import pytest

from pretraining.params import (
    COMMON, Bool, Choice, Float, FloatList, Int, IntList, ParameterError, Str, check_parameters,
    user_names,
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
        COMMON["device"].check("device", "gpu")
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


def test_check_parameters_returns_values_in_order():
    ns = _namespace(profile="quick", device="cpu", n_seeds=3, depths=(1, 2))
    got = check_parameters(ns, {"n_seeds": Int(min=1), "depths": IntList(min=1)})
    assert got == {"profile": "quick", "device": "cpu", "n_seeds": 3, "depths": [1, 2]}
    assert list(got) == ["profile", "device", "n_seeds", "depths"]


def test_unknown_name_is_reported_with_the_known_ones():
    ns = _namespace(profile="quick", n_seeds=3, n_seed=4)
    with pytest.raises(ParameterError) as e:
        check_parameters(ns, {"n_seeds": Int(min=1)})
    assert str(e.value) == ("unknown parameter n_seed=4; the parameters are: "
                            "dataset, device, n_seeds, profile, seed")


def test_missing_spec_name_and_missing_profile():
    with pytest.raises(ParameterError, match="parameter 'n_seeds' is not defined"):
        check_parameters(_namespace(profile="quick"), {"n_seeds": Int(min=1)})
    with pytest.raises(ParameterError, match="parameter 'profile' is not defined"):
        check_parameters(_namespace(n_seeds=1), {"n_seeds": Int(min=1)})


def test_common_specs_apply_and_can_be_overridden():
    with pytest.raises(ParameterError, match="^dataset='cifar' is not allowed"):
        check_parameters(_namespace(profile="quick", dataset="cifar"), {})
    with pytest.raises(ParameterError, match="^profile='fast' is not allowed"):
        check_parameters(_namespace(profile="fast"), {})
    with pytest.raises(ParameterError, match="^seed=-1 is not allowed"):
        check_parameters(_namespace(profile="quick", seed=-1), {})
    got = check_parameters(_namespace(profile="quick", dataset="mnist"),
                           {"dataset": Choice("mnist")})
    assert got["dataset"] == "mnist"


def test_spec_values_must_be_specs():
    with pytest.raises(TypeError, match="spec\\['n'\\]"):
        check_parameters(_namespace(profile="quick", n=1), {"n": int})


def test_user_names_skips_ipython_modules_callables_and_private():
    assert user_names(_namespace(a=1)) == {"a": 1}


def test_traceback_in_ipython_is_one_line():
    err = ParameterError("n=0 is not allowed: an integer >= 1")
    assert err._render_traceback_() == ["ParameterError: n=0 is not allowed: an integer >= 1"]
    assert isinstance(err, ValueError)
