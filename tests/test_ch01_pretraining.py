"""Chapter 1 (pretraining.chapters.ch01_pretraining): its helpers at tiny sizes, exact values where
possible; its rules and its claim parts."""

import matplotlib

matplotlib.use("Agg")

import numpy as np

import pytest
import torch

from pretraining.analysis import ais
from pretraining.chapters import ch01_pretraining as ch1
from pretraining.chapters.ch01_pretraining import (base_rate_loglik, binarize, check_samples, distortion_grid,
                                                   layer_table, nearest_distances, plot_learning_curves,
                                                   rbm_test_loglik, sample_snapshots)
from pretraining.core.models import RBM, DenoisingAutoencoder, Stack


def _tiny_rbm(V=10, H=6, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return RBM(torch.randn(1, V, H, generator=g) * scale, torch.randn(1, V, generator=g) * 0.5,
               torch.randn(1, H, generator=g) * 0.5)


def _binary(n, V, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, V, generator=g) < 0.4).float()


def test_ais_loglik_matches_exact_on_tiny_rbm():
    rbm = _tiny_rbm()
    v = _binary(50, 10)
    base_data = torch.rand(200, 10, generator=torch.Generator().manual_seed(2))
    est = rbm_test_loglik(rbm, v, base_data, n_chains=200, n_betas=1000, seed=3)
    exact = ais.log_likelihood(rbm.W, rbm.b_visible, rbm.b_hidden, v,
                               ais.log_partition_exact(rbm.W, rbm.b_visible, rbm.b_hidden))
    assert abs(float(est.loglik - exact)) < max(0.05, 4 * float(est.ais_std))
    assert float(est.lower) <= float(exact) + 0.05 <= float(est.upper) + 0.1
    assert 0 < float(est.ais_std) < 0.05
    assert float(est.test_sem) > 0
    assert est.loglik.dtype == torch.float64 and est.loglik.shape == (1,)


def test_base_rate_rbm_has_base_rate_loglik_exactly():
    """An RBM with zero weights and the base-rate biases is the base model: AIS is exact."""
    base_data = torch.rand(300, 12, generator=torch.Generator().manual_seed(0))
    b = ais.base_rate_visible_bias(base_data)
    rbm = RBM(torch.zeros(1, 12, 4), b[None].clone(), torch.zeros(1, 4))
    v = _binary(40, 12)
    est = rbm_test_loglik(rbm, v, base_data, n_chains=10, n_betas=20)
    assert float(est.loglik) == pytest.approx(base_rate_loglik(v, base_data), abs=1e-5)
    assert float(est.ais_std) == pytest.approx(0.0, abs=1e-6)


def test_base_rate_loglik_by_hand():
    base_data = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 1.0]])  # means 0.75, 0.75
    v = torch.tensor([[1.0, 0.0]])
    assert base_rate_loglik(v, base_data) == pytest.approx(torch.log(torch.tensor(0.75 * 0.25)).item(), abs=1e-6)


def test_loglik_rejects_bad_inputs():
    rbm = _tiny_rbm()
    with pytest.raises(ValueError, match="v_test"):
        rbm_test_loglik(rbm, _binary(5, 9), torch.rand(5, 10))
    with pytest.raises(ValueError, match="n_chains"):
        rbm_test_loglik(rbm, _binary(5, 10), torch.rand(5, 10), n_chains=1)
    with pytest.raises(ValueError, match="binary"):
        base_rate_loglik(torch.full((2, 3), 0.5), torch.rand(4, 3))


def test_binarize_is_seeded_binary_and_unbiased():
    x = torch.full((400, 50), 0.3)
    a, b = binarize(x, 7), binarize(x, 7)
    assert torch.equal(a, b) and not torch.equal(a, binarize(x, 8))
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    assert abs(a.mean().item() - 0.3) < 0.02
    assert torch.equal(binarize(torch.tensor([[0.0, 1.0]]), 0), torch.tensor([[0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        binarize(torch.tensor([[1.5]]), 0)
    with pytest.raises(ValueError, match="seed"):
        binarize(x, -1)


def _tiny_stack():
    return Stack("rbm", [_tiny_rbm(16, 8, seed=1), _tiny_rbm(8, 5, seed=2)])


def test_sample_snapshots_match_stack_sample():
    stack = _tiny_stack()
    snaps = sample_snapshots(stack, 6, [1, 3, 7], seed=4)
    assert snaps.shape == (3, 6, 16)
    for i, steps in enumerate([1, 3, 7]):
        assert torch.equal(snaps[i], stack.sample(6, steps, [4])[0])
    assert ((snaps >= 0) & (snaps <= 1)).all()


def test_sample_snapshots_rejects_bad_input():
    with pytest.raises(ValueError, match="steps"):
        sample_snapshots(_tiny_stack(), 2, [3, 3], 0)
    with pytest.raises(ValueError, match="steps"):
        sample_snapshots(_tiny_stack(), 2, [0, 2], 0)
    dae = Stack("dae", [DenoisingAutoencoder.init(4, 3, [0])])
    with pytest.raises(ValueError, match="RBM"):
        sample_snapshots(dae, 2, [1], 0)


def test_nearest_distances_exact_and_chunk_invariant():
    ref = torch.rand(30, 8, generator=torch.Generator().manual_seed(0))
    imgs = torch.cat([ref[:3], ref[:3] + 0.5])
    d = nearest_distances(imgs, ref)
    assert torch.allclose(d[:3], torch.zeros(3), atol=1e-3)
    brute = torch.stack([(ref - x).norm(dim=1).min() for x in imgs])
    assert torch.allclose(d, brute, atol=1e-5)
    assert torch.allclose(nearest_distances(imgs, ref, chunk=2), d, atol=1e-6)


def test_distortion_grid():
    x = torch.rand(3, 784, generator=torch.Generator().manual_seed(0))
    g = distortion_grid(x, 4, seed=5)
    assert g.shape == (3, 5, 784)
    assert torch.equal(g[:, 0], x)
    assert not torch.allclose(g[:, 1], g[:, 2])
    assert torch.equal(g, distortion_grid(x, 4, seed=5))
    with pytest.raises(ValueError, match="n_variants"):
        distortion_grid(x, 0, seed=5)


def test_layer_table_and_curves():
    rbm_h = [{"recon_error": [[0.04, 0.06], [0.02, 0.02]], "pll": [[-150.0, -150.0], [-100.0, -110.0]]},
             {"recon_error": [[0.01, 0.01], [0.005, 0.007]], "pll": [[-200.0, -200.0], [-190.0, -190.0]]}]
    dae_h = [{"loss": [[1.0], [0.5]], "recon_error": [[0.03], [0.02]]},
             {"loss": [[1.0], [0.5]], "recon_error": [[0.01], [0.008]]}]
    rows = layer_table(rbm_h, [20, 10])
    assert rows[0] == pytest.approx({"n_hidden": 20, "epochs": 2, "recon_error_first_epoch": 0.05,
                                     "recon_error_last_epoch": 0.02, "pll_first_epoch": -150.0,
                                     "pll_last_epoch": -105.0})
    assert "pll_first_epoch" not in layer_table(dae_h, [20, 10])[1]
    with pytest.raises(ValueError, match="one dict per layer"):
        layer_table(rbm_h, [20])
    fig = plot_learning_curves({"rbm": rbm_h, "dae": dae_h}, [20, 10])
    assert len(fig.axes) == 4 and len(fig.axes[0].lines) == 2  # 2 x 2: both reconstruction errors, PLL, DAE loss
    assert [ax.get_title() for ax in fig.axes] == ["RBMs: reconstruction error", "auto-encoders: reconstruction error",
                                                   "RBMs: pseudo-log-likelihood", "auto-encoders: denoising loss"]
    assert fig.legends[0].texts[1].get_text() == "layer 2 (10 units)"  # layers numbered from 1, as in the table
    assert {ln.get_linestyle() for ln in fig.axes[0].lines} == {"-", "--"}  # told apart without colour too
    assert len(plot_learning_curves({"rbm": rbm_h}, [20, 10]).axes) == 2
    with pytest.raises(ValueError, match="'rbm' and/or 'dae'"):
        plot_learning_curves({"sdae": dae_h}, [20, 10])


# -- the chapter's rules and claim parts ---------------------------------------------------------

def test_pretraining_batch_must_fit_the_training_set_of_the_chosen_data():
    d = ch1.SPEC.defaults()
    assert ch1.SPEC.problems(d) == []
    assert ch1.SPEC.problems({**d, "pretrain_batch_size": 8000}) == [
        "pretrain_batch_size=8000 is not allowed: at most the 7000 training digits of mnist-10k"]
    assert ch1.SPEC.problems({**d, "pretrain_batch_size": 8000, "dataset": "mnist"}) == []


def test_check_samples_counts_classes_and_distances_of_the_nearest_training_digits():
    g = torch.Generator().manual_seed(0)
    train_x = torch.rand(20, 16, generator=g)
    train_y = torch.arange(20) % 4
    snaps = torch.stack([train_x[[1, 5, 9]], train_x[[3, 3, 7]]])  # copies: classes 1,1,1 then 3,3,3
    c = check_samples(snaps, train_x[:4] + 0.01, train_x, train_y)
    assert c["median_samples"] == pytest.approx(0.0, abs=1e-4) and c["median_test"] == pytest.approx(0.04, abs=1e-4)
    assert c["n_classes"] == 1 and c["top_class"] == 3 and c["top_share"] == 1.0
    assert c["classes_by_step"] == [1, 1]
    mean = train_x.mean(0, keepdim=True)
    assert c["mean_digit"] == pytest.approx(float(torch.cdist(mean, train_x).min()), rel=1e-6)


def _result(recon_falls=True, gain=50.0, closer=True, n_classes=10, confidence=0.9, n_digits=20):
    first, last = (0.04, 0.02) if recon_falls else (0.02, 0.03)
    rows = [{"n_hidden": 5, "recon_error_first_epoch": first, "recon_error_last_epoch": last}]
    noise = np.random.default_rng(0).normal(0, 3.0, n_digits)
    base = -150.0 + np.random.default_rng(1).normal(0, 10.0, n_digits)
    sandwich = {"raise": float(np.mean(base + gain + noise)), "ais": float(np.mean(base + gain + noise)) + 2.0,
                "raise_sem": 1.0, "base": float(np.mean(base)), "n": n_digits,
                "raise_per_digit": (base + gain + noise).tolist(), "base_per_digit": base.tolist()}
    judged = {name: {"counts": [1] * 10, "n_classes": n_classes, "entropy_bits": 3.0, "confidence": confidence,
                     "top_class": 1, "top_share": 0.2} for name in ("random bits", "test-digit codes", "PCD top level",
                                                                    "real test digits")}
    judged["test-digit codes"]["kept_start_class"] = 0.7
    return ch1.Result(stacks={}, histories={}, tables={"rbm": rows, "dae": rows}, binary_history={"pll": []},
                      loglik={"loglik": -150.0 + gain, "ais_std": 1.0, "lower": 0.0, "upper": 0.0, "test_sem": 0.1,
                              "log_z": 0.0},
                      sandwich=sandwich, base_loglik=-150.0, ais_check=[], steps=[1], snaps=torch.zeros(1, 1, 1),
                      data_snaps=torch.zeros(1, 1, 1), pcd_snaps=torch.zeros(1, 1, 1), starts=torch.zeros(1, dtype=torch.int64), shown=torch.zeros(1),
                      sample_check={"median_samples": 3.0 if closer else 6.0, "median_test": 4.0, "mean_digit": 5.0,
                                    "n_classes": n_classes, "top_class": 1, "top_share": 0.2, "classes_by_step": [n_classes]},
                      judged=judged, classifier_error=0.05, seconds=1.0)


@pytest.mark.parametrize("kw, statuses, verdict", [
    ({}, ["holds", "holds", "not tested", "holds"], "supported"),
    ({"gain": 0.0, "n_classes": 6}, ["holds", "fails", "not tested", "fails"], "partly supported"),
    ({"gain": 2.0, "confidence": 0.5}, ["holds", "holds", "not tested", "fails"], "partly supported"),
    ({"recon_falls": False, "gain": -5.0, "n_classes": 3}, ["fails", "fails", "not tested", "fails"], "not supported"),
])
def test_claim_parts_on_hand_made_numbers(kw, statuses, verdict):
    from types import SimpleNamespace

    from pretraining.book import claims
    ch = SimpleNamespace(params={**ch1.SPEC.defaults(), "rbm_epochs": 3, "dae_epochs": 3})
    parts = ch1.claim_parts(ch, _result(**kw))
    assert [p.key for p in parts] == ["a", "b", "c", "d"]
    assert [p.status for p in parts] == statuses and claims.verdict(parts) == verdict
    assert parts[1].test == "wilcoxon" and parts[1].n == 20  # (b): paired over the digits
    one_epoch = ch1.claim_parts(SimpleNamespace(params=ch1.SPEC.defaults() | {"rbm_epochs": 1}), _result())
    assert one_epoch[0].status == "not tested" and "one epoch" in one_epoch[0].evidence
    few = ch1.claim_parts(ch, _result(n_digits=5))[1]
    assert few.status == "not tested" and "5 paired digits" in few.evidence


def test_judge_counts_classes_entropy_and_confidence():
    probs = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.1, 0.2, 0.7], [0.6, 0.4, 0.0]])
    j = ch1.judge(probs)
    assert j["counts"] == [3, 0, 1] and j["n_classes"] == 2 and j["top_class"] == 0 and j["top_share"] == 0.75
    assert j["entropy_bits"] == pytest.approx(-(0.75 * np.log2(0.75) + 0.25 * np.log2(0.25)))
    assert j["confidence"] == pytest.approx((0.9 + 0.8 + 0.7 + 0.6) / 4)
    one = ch1.judge(torch.tensor([[0.8, 0.2], [0.9, 0.1]]))
    assert one["entropy_bits"] == 0.0 and str(one["entropy_bits"]) == "0.0"  # not "-0.0" on the page
    with pytest.raises(ValueError, match="probs"):
        ch1.judge(torch.ones(3))


def test_class_starts_takes_each_class_equally_and_is_seeded():
    labels = torch.tensor([0, 1, 2] * 10)
    idx = ch1.class_starts(labels, 7, seed=3)
    assert torch.bincount(labels[idx], minlength=3).tolist() == [3, 2, 2]
    assert torch.equal(idx, ch1.class_starts(labels, 7, seed=3)) and not torch.equal(idx, ch1.class_starts(labels, 7, seed=4))
    with pytest.raises(ValueError, match="classes \\[2\\] have fewer"):
        ch1.class_starts(torch.tensor([0, 0, 1, 1, 2]), 6, seed=0)


def test_sample_snapshots_from_a_start_and_top_inputs():
    from pretraining.core.models import Stack
    rbms = [ch1.RBM.init(784, 8, [1], init_std=1.0), ch1.RBM.init(8, 6, [2], init_std=1.0)]
    stack = Stack("rbm", rbms)
    x = torch.rand(4, 784)
    codes = ch1.top_inputs(stack, x)
    assert codes.shape == (1, 4, 8) and torch.allclose(codes, rbms[0].hidden_probs(x))
    snaps = ch1.sample_snapshots(stack, 4, [1, 3], 0, start=codes)
    assert snaps.shape == (2, 4, 784) and bool(((snaps >= 0) & (snaps <= 1)).all())
    assert torch.equal(snaps, ch1.sample_snapshots(stack, 4, [1, 3], 0, start=codes))
    assert not torch.equal(snaps, ch1.sample_snapshots(stack, 4, [1, 3], 0))  # from random bits: other chains
    with pytest.raises(ValueError, match="start must be"):
        ch1.sample_snapshots(stack, 4, [1], 0, start=torch.rand(3, 8))


# -- presentation: sizes that fit the page, tables in words ------------------------------------------

def _page_sized(fig):
    from pretraining.analysis.figures import PAGE_WIDTH
    w, h = fig.get_size_inches()
    return 4.4 <= w <= PAGE_WIDTH and h <= 11


@pytest.mark.parametrize("n_layers, n_epochs", [(1, 1), (3, 5), (5, 50)])
def test_learning_curves_keep_the_page_width_and_a_font_of_at_least_10_pt(n_layers, n_epochs):
    import matplotlib.pyplot as plt
    from matplotlib.text import Text
    from pretraining.analysis.figures import SMALLEST_FONT_PT

    def hist(rbm):
        key = "pll" if rbm else "loss"
        return [{"recon_error": [[0.05 / (layer + 1) * 0.9 ** e] for e in range(n_epochs)],
                 key: [[-100.0 + e] for e in range(n_epochs)]} for layer in range(n_layers)]

    fig = plot_learning_curves({"rbm": hist(True), "dae": hist(False)}, [500] * n_layers)
    fig.canvas.draw()
    assert _page_sized(fig)
    sizes = {t.get_fontsize() for t in fig.findobj(Text) if t.get_text() and t.get_visible()}
    assert min(sizes) >= SMALLEST_FONT_PT
    ticks = [t for t in fig.axes[0].get_xticks() if 0.5 <= t <= n_epochs + 0.5]
    assert all(float(t).is_integer() for t in ticks) and len(ticks) >= 1  # whole epochs only
    plt.close(fig)


@pytest.mark.parametrize("steps", [[1], [1, 10], [1, 10, 20], [1, 10, 100, 1000], list(range(1, 7))])
def test_chain_snapshots_do_not_grow_with_the_number_of_steps(steps):
    import matplotlib.pyplot as plt

    fig = ch1.plot_chains(torch.rand(len(steps), 30, 784), steps)
    assert _page_sized(fig)
    assert [ax.get_title() for ax in fig.axes] == [f"{s:,} Gibbs step{'s' * (s > 1)}" for s in steps]
    assert len(fig.axes[0].images) == 25  # a square grid of the first 25 chains
    plt.close(fig)
    with pytest.raises(ValueError, match="len\\(steps\\)"):
        ch1.plot_chains(torch.rand(2, 5, 784), [1, 10, 100])


@pytest.mark.parametrize("n", [1, 25, 100])
def test_samples_beside_digits_fit_the_page(n):
    import matplotlib.pyplot as plt

    fig = ch1.plot_samples_beside_digits(torch.rand(n, 784), torch.rand(n, 784), 1000)
    assert _page_sized(fig) and [len(ax.images) for ax in fig.axes] == [n, n]
    assert fig.axes[0].get_title() == "DBN samples (1,000 Gibbs steps)"
    plt.close(fig)


def test_layer_table_is_shown_in_words_with_layers_from_1():
    rbm_h = [{"recon_error": [[0.04], [0.0123]], "pll": [[-150.0], [-100.04]]}] * 2
    dae_h = [{"loss": [[1.0], [0.5]], "recon_error": [[0.03], [0.00456]]}] * 2
    html = ch1._styled_layer_table({"rbm": layer_table(rbm_h, [500, 500]),
                                    "dae": layer_table(dae_h, [500, 500])}).to_html()
    for text in ("reconstruction error (MSE)", "pseudo-log-likelihood (nats)", "first epoch", "last epoch",
                 "layer 1", "layer 2", "RBMs", "auto-encoders", "0.0123", "0.00456", "-100.0"):
        assert text in html
    for raw in ("recon_error", "pll_", "n_hidden", "layer 0", "0.012300", "-100.040"):
        assert raw not in html
    assert ch1._significant(0.0398) == "0.0398" and ch1._significant(0.00322) == "0.00322"
    assert ch1._significant(0.1) == "0.100"
    only_dae = ch1._styled_layer_table({"dae": layer_table(dae_h, [500, 500])}).to_html()
    assert "pseudo-log-likelihood" not in only_dae


def test_likelihood_table_and_plurals():
    params = {**ch1.SPEC.defaults(), "hidden_sizes": [500, 500], "rbm_epochs": 1}
    html = ch1._likelihood_table(params, -132.126, -206.14).to_html()
    for text in ("RBM, 500 hidden units, CD-1, 1 epoch, AIS<", "independent pixels", "this chapter",
                 "Salakhutdinov & Murray (2008)", "RBM, 500 hidden units, CD-25", "-132.13", "-206.14",
                 "test log-likelihood (nats)"):
        assert text in html
    assert "-132.126" not in html
    assert ch1._epochs_text(5, 5) == "5 epochs per layer in both stacks"
    assert ch1._epochs_text(1, 3) == "1 epoch per RBM, 3 epochs per auto-encoder"


def test_pcd_top_replaces_the_top_rbm_with_one_of_its_shape_trained_on_the_codes_below():
    from pretraining.core.models import Stack
    rbms = [ch1.RBM.init(784, 8, [1], init_std=0.5), ch1.RBM.init(8, 6, [2], init_std=0.5)]
    stack = Stack("rbm", rbms)
    x = torch.rand(40, 784)
    top = ch1.pcd_top(stack, x, epochs=2, lr=0.05, batch_size=10, seeds=[0])
    assert top.W.shape == rbms[1].W.shape and not torch.equal(top.W, rbms[1].W)
    again = ch1.pcd_top(stack, x, epochs=2, lr=0.05, batch_size=10, seeds=[0])
    assert torch.equal(top.W, again.W)  # seeded
    assert torch.equal(stack.layers[1].W, rbms[1].W)  # the stack itself is untouched


@pytest.mark.parametrize("profile", ["quick", "paper"])
def test_work_lists_every_training_of_the_run(profile, work_plan):
    p, got, (n_train, n_valid, _) = work_plan(ch1, profile)
    h, B = p["hidden_sizes"], p["pretrain_batch_size"]
    layers = list(zip([784, *h], h))
    want = [("rbm", s, 1, n_train, p["rbm_epochs"], B, 0) for s in layers]            # grey-level RBM stack
    want += [("dae", s, 1, n_train, p["dae_epochs"], B, 0) for s in layers]           # grey-level DAE stack
    want += [("rbm", (784, h[0]), 1, n_train, p["rbm_epochs"], B, 0)]                 # binary RBM
    want += [("rbm", (784, k), 1, n_train, p["rbm_epochs"], B, 0) for k in p["ais_check_hidden"]]
    want += [("rbm", layers[-1], 1, n_train, p["top_epochs"], B, 0)]                  # PCD top RBM
    # the judge: 5 rates on its one seed, nothing else to train
    want += [("finetune", (784, 300, 10), 5, n_train, p["classifier_epochs"], 50, n_valid)]
    assert sorted(got) == sorted(want)
    assert all(j.k == 1 for j in ch1.work(p))
