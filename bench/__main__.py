"""Benchmark the training core and write ``_build/bench/bench.json``.

Measured side by side in one run, on one device (``--device``, default: the library's choice):

(a) RBM CD-1, 784 -> 500, minibatch 100, one epoch over mnist-10k train: examples/s of
    :func:`pretraining.core.train.train_rbm` vs scikit-learn's ``BernoulliRBM`` (same learning rate and
    batch size, ``n_iter=1``; scikit-learn runs PCD-1 with numpy on the CPU). Ours includes its
    per-epoch monitoring (reconstruction error and pseudo-log-likelihood on 1000 examples).
(b) 16 seeds of a 784-256-256-10 classifier fine-tuned for one epoch as one batched run (M = 16) vs
    the same 16 seeds trained one after another (M = 1 each).
(c) achieved GFLOP/s of fine-tuning a 784-1000-1000-1000-10 net (6 x parameters x examples per
    epoch) vs a plain ``torch.mm`` of the shape that dominates it, (batch x 1000) @ (1000 x 1000).
(e) fractions of the machine's fp32 matmul rate (a 2048 x 2048 product): the RBM of (a)
    (``rbm_fraction_of_matmul``, 10 x V x H FLOP per example: three products and two outer
    products), and chapter 3's quick fine-tuning, 784-150-150-150-150-10, 10 members batched, batch 50
    (``finetune_quick_fraction_of_matmul``).
(f) ``tutorial_dbn_minutes_estimate``: the Theano deep-learning tutorial's DBN (784-1000-1000-1000,
    100 CD-1 epochs per layer on 50,000 digits, minibatch 10; its docs report 716 minutes of
    pre-training on 4 cores), predicted from rehearsals at those shapes (the time per step and the
    per-epoch monitoring of two short timed epochs, scaled to 50,000 examples and 100 epochs), as
    ``python -m pretraining estimate`` does for the book.
(g) chapter 3's smoke study (every setting and the stream, :func:`pretraining.chapters.ch03_depth_study.run`)
    into an empty cache, computed in this process (executor ``local``) vs on a Dask cluster of 2 worker
    processes on this machine (``local-cluster:2``, started once, before the timing):
    ``cluster_vs_local_speedup``; and the cluster's overhead per artifact (``cluster_seconds_per_task``):
    the seconds per task of 40 tasks that compute nothing but refer to the chapter, as a real one does
    (sent, the chapter rebuilt on the worker once, a tensor sent back).
(h) the random numbers of one CD-1 step (784-500, minibatch 20: a uniform per hidden and per visible
    unit of every example) for M members, drawn as the library draws them (one call per member, each
    from its own generator, :func:`pretraining.core.seeding.uniform`) vs one call of the same size from
    one generator: ``member_rng_loop_vs_one_call`` per M (16 and 128), the price of the per-member
    loop over the generation itself.

Each figure is the best of ``--repeats`` timed rounds after one untimed warm-up; within a comparison
the contenders take turns, so a shared machine's changing load affects them alike, each after half a
second of rest, so that none is slowed by the still-spinning threads of the one before.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from pretraining.core.data import load_dataset
from pretraining.core.device import busy_cpus, get_device
from pretraining.core.distort import distort
from pretraining.core.models import RBM, Classifier
from pretraining.core.rehearsal import Job, predict, rehearse
from pretraining.core.seeding import member_generators, uniform
from pretraining.core.train import FinetuneConfig, RBMConfig, finetune, train_rbm


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


SETTLE_S = 0.5
"""Seconds of rest before each timed call: the thread pools of the call before (OpenBLAS's under
scikit-learn, PyTorch's OpenMP threads) spin a while after their work and would slow the next
contender down (measured: an RBM epoch right after scikit-learn's took 1.5x as long)."""


def race(fns: dict[str, Callable[[], object]], device: torch.device, repeats: int) -> dict[str, float]:
    """Best wall-clock seconds of each function over ``repeats`` rounds.

    One untimed warm-up call each, then the functions take turns in every round, so that a change
    in the machine's load (it may be shared) affects all of them alike; each timed call starts after
    :data:`SETTLE_S` seconds of rest, so that none pays for the threads of the one before.
    """
    for fn in fns.values():
        fn()
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync(device)
            time.sleep(SETTLE_S)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: torch.device) -> dict:
    info = {"cpu_model": cpu_model(), "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default (spin, then sleep)"),
            "busy_cpus_at_start": busy_cpus(),
            "torch_version": torch.__version__, "python": platform.python_version(), "device": str(device)}
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
    return info


def bench_rbm(x: torch.Tensor, device: torch.device, repeats: int) -> dict:
    """(a) one CD-1 epoch, 784 -> 500, batch 100: ours vs scikit-learn BernoulliRBM."""
    from sklearn.neural_network import BernoulliRBM

    config = RBMConfig(epochs=1, lr=0.05, batch_size=100, k=1)
    xd, xn = x.to(device), x.numpy()
    t = race({"ours": lambda: train_rbm(RBM.init(784, 500, [0], device=device), xd, config, [0], progress=False),
              "sklearn": lambda: BernoulliRBM(n_components=500, learning_rate=0.05, batch_size=100, n_iter=1,
                                              random_state=0).fit(xn)}, device, repeats)
    ours, theirs = t["ours"], t["sklearn"]
    n = x.shape[0]
    return {"rbm_ours_seconds": ours, "rbm_sklearn_seconds": theirs, "rbm_ours_examples_per_s": n / ours,
            "rbm_sklearn_examples_per_s": n / theirs, "rbm_vs_sklearn_speedup": theirs / ours}


def bench_members(x: torch.Tensor, y: torch.Tensor, device: torch.device, repeats: int, n_seeds: int = 16) -> dict:
    """(b) fine-tuning 16 seeds of 784-256-256-10: one batched run vs a loop of M = 1 runs."""
    sizes, config, seeds = [784, 256, 256, 10], FinetuneConfig(epochs=1, lr=0.1, batch_size=50), list(range(n_seeds))
    xd, yd = x.to(device), y.to(device)

    def batched():
        finetune(Classifier.random(sizes, seeds, device=device), xd, yd, config, seeds, progress=False)

    def loop():
        for s in seeds:
            finetune(Classifier.random(sizes, [s], device=device), xd, yd, config, [s], progress=False)

    t = race({"batched": batched, "loop": loop}, device, repeats)
    t_batched, t_loop = t["batched"], t["loop"]
    n = x.shape[0] * n_seeds
    return {"members": n_seeds, "batched_seconds": t_batched, "loop_seconds": t_loop,
            "batched_examples_per_s": n / t_batched, "loop_examples_per_s": n / t_loop,
            "batched_vs_loop_speedup": t_loop / t_batched}


def bench_flops(x: torch.Tensor, y: torch.Tensor, device: torch.device, repeats: int, batch: int = 100) -> dict:
    """(c) GFLOP/s of fine-tuning 784-1000-1000-1000-10 vs torch.mm of (batch x 1000) @ (1000 x 1000)."""
    sizes = [784, 1000, 1000, 1000, 10]
    config = FinetuneConfig(epochs=1, lr=0.05, batch_size=batch)
    clf = Classifier.random(sizes, [0], device=device)
    xd, yd = x.to(device), y.to(device)
    a = torch.rand(batch, 1000, device=device)
    b = torch.rand(1000, 1000, device=device)
    out = torch.empty(batch, 1000, device=device)
    big = torch.rand(2048, 2048, device=device)
    reps = 200

    def mm():
        for _ in range(reps):
            torch.mm(a, b, out=out)

    t = race({"finetune": lambda: finetune(clf, xd, yd, config, [0], progress=False), "mm": mm,
              "mm_2048": lambda: torch.mm(big, big)}, device, repeats)
    n_params = sum(p.numel() for p in clf.parameters())
    n_used = (x.shape[0] // batch) * batch
    ft_gflops = 6 * n_params * n_used / t["finetune"] / 1e9
    mm_gflops = 2 * batch * 1000 * 1000 * reps / t["mm"] / 1e9
    return {"finetune_batch_size": batch, "finetune_params": n_params, "finetune_seconds": t["finetune"],
            "finetune_gflops": ft_gflops, "matmul_shape": [batch, 1000, 1000], "matmul_gflops": mm_gflops,
            "matmul_2048_gflops": 2 * 2048 ** 3 / t["mm_2048"] / 1e9,
            "finetune_fraction_of_matmul": ft_gflops / mm_gflops}


def matmul_gflops(device: torch.device, repeats: int, n: int = 2048) -> float:
    """The machine's fp32 matmul rate: GFLOP/s of an (n x n) @ (n x n) product."""
    big = torch.rand(n, n, device=device)
    return 2 * n ** 3 / race({"mm": lambda: torch.mm(big, big)}, device, repeats)["mm"] / 1e9


def bench_fractions(x: torch.Tensor, y: torch.Tensor, device: torch.device, repeats: int, rbm: dict) -> dict:
    """(e) the RBM of (a) and chapter 3's quick fine-tuning as fractions of the 2048^2 matmul rate."""
    rate = matmul_gflops(device, repeats)
    n_rbm = (x.shape[0] // 100) * 100
    rbm_gflops = 10 * 784 * 500 * n_rbm / rbm["rbm_ours_seconds"] / 1e9
    sizes, seeds = [784, 150, 150, 150, 150, 10], list(range(10))
    config = FinetuneConfig(epochs=1, lr=0.5, batch_size=50)
    xd, yd = x.to(device), y.to(device)
    clf = Classifier.random(sizes, seeds, device=device)
    t = race({"quick": lambda: finetune(clf, xd, yd, config, seeds, progress=False)}, device, repeats)["quick"]
    n_params = sum(a * b for a, b in zip(sizes, sizes[1:]))
    ft_gflops = 6 * n_params * (x.shape[0] // 50) * 50 * len(seeds) / t / 1e9
    return {"matmul_2048_fp32_gflops": rate, "rbm_gflops": rbm_gflops, "rbm_fraction_of_matmul": rbm_gflops / rate,
            "finetune_quick_shapes": {"sizes": sizes, "members": len(seeds), "batch_size": 50},
            "finetune_quick_seconds_per_epoch": t, "finetune_quick_gflops": ft_gflops,
            "finetune_quick_fraction_of_matmul": ft_gflops / rate}


TUTORIAL_DBN = {"sizes": [784, 1000, 1000, 1000], "epochs": 100, "examples": 50_000, "batch_size": 10,
                "reported_minutes": 716, "reported_cores": 4}


def bench_tutorial_dbn(device: torch.device, repeats: int) -> dict:
    """(f) the tutorial DBN's pre-training time, from rehearsals (:func:`pretraining.core.rehearsal.rehearse`,
    one member) of CD-1 epochs at its shapes."""
    spec, layers = TUTORIAL_DBN, []
    for n_in, n_out in zip(spec["sizes"], spec["sizes"][1:]):
        job = Job(f"tutorial DBN {n_in}-{n_out}", "rbm", (n_in, n_out), members=1, examples=spec["examples"],
                  epochs=spec["epochs"], batch_size=spec["batch_size"])
        t = rehearse(job, device, repeats=repeats, members=1)
        layers.append({"shape": [n_in, n_out], "seconds_per_step": t.step_seconds,
                       "monitor_seconds_per_epoch": t.epoch_seconds, "predicted_seconds": predict(job, t)})
    return {"tutorial_dbn": {**spec, "layers": layers},
            "tutorial_dbn_minutes_estimate": sum(layer["predicted_seconds"] for layer in layers) / 60}


def bench_cluster(device: torch.device, repeats: int, workers: int = 2, n_tasks: int = 40) -> dict:
    """(g) chapter 3's smoke study: local vs local-cluster:2; the cluster's seconds per task."""
    import contextlib
    import functools
    import io

    from pretraining.book.cache import compute_tracked
    from pretraining.book.executor import DaskExecutor
    from pretraining.book.paths import find_root
    from pretraining.book.profiles import profile_values
    from pretraining.book.runtime import Chapter
    from pretraining.chapters import ch03_depth_study as ch03

    values = ch03.SPEC.check({**profile_values(find_root(), ch03.SPEC, "smoke"), "device": device.type,
                              "executor": "local"})
    cluster = DaskExecutor(f"local-cluster:{workers}")
    t0 = time.perf_counter()
    cluster.client()
    start_s = time.perf_counter() - t0

    def study(executor):
        with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stderr(io.StringIO()):  # no bars
            ch = Chapter(ch03.SPEC, values, Path(tmp))
            ch.executor = executor
            ch03.run(ch)

    def nothing(ch):
        return {"x": torch.zeros(1)}, {}

    def tasks():
        with tempfile.TemporaryDirectory() as tmp:
            ch = Chapter(ch03.SPEC, values, Path(tmp))
            cluster.run([functools.partial(compute_tracked, "nothing", functools.partial(nothing, ch))
                         for _ in range(n_tasks)], lambda i, result, where: None)

    try:
        t = race({"local": lambda: study(None), "cluster": lambda: study(cluster), "tasks": tasks}, device, repeats)
        where = cluster.where()
    finally:
        cluster.close()
    return {"cluster_workers": where, "cluster_start_seconds": start_s, "ch3_smoke_local_seconds": t["local"],
            "ch3_smoke_cluster_seconds": t["cluster"], "cluster_vs_local_speedup": t["local"] / t["cluster"],
            "cluster_seconds_per_task": t["tasks"] / n_tasks}


def bench_rng(device: torch.device, repeats: int, members: tuple[int, ...] = (16, 128), batch: int = 20,
              units: int = 784 + 500, calls: int = 20) -> dict:
    """(h) one CD-1 step's uniforms for M members: one generator per member (the library) vs one call
    (each timing: ``calls`` draws in a row, divided by ``calls``)."""
    rows = []
    for m in members:
        gens = member_generators(list(range(m)), "noise", 1, device)
        one = torch.Generator(device=device).manual_seed(0)
        t = race({"members": lambda: [uniform((batch, units), gens, device=device) for _ in range(calls)],
                  "one": lambda: [torch.rand((m, batch, units), generator=one, device=device) for _ in range(calls)]},
                 device, repeats)
        t = {k: v / calls for k, v in t.items()}
        rows.append({"members": m, "per_member_seconds": t["members"], "one_call_seconds": t["one"],
                     "member_rng_loop_vs_one_call": t["members"] / t["one"]})
    return {"member_rng": {"batch_size": batch, "units": units, "rows": rows}}


def profile_estimate(profile: str, device: torch.device) -> dict:
    """The predicted wall time of ``profile`` on ``device`` (``python -m pretraining estimate``)."""
    from pretraining.book.cli import checked_plans
    from pretraining.book.estimate import estimate, report
    from pretraining.book.paths import find_root

    plans = checked_plans(find_root(), profile, [], [["device", device.type]])
    estimates, _ = estimate([(doc.stem, changed) for doc, changed in plans],
                            progress=lambda line: print(line, file=sys.stderr, flush=True))
    print(report(profile, estimates), file=sys.stderr)
    return {"profile": profile, "predicted_seconds": sum(e.total_seconds for e in estimates),
            "chapters": [e.record() for e in estimates]}


def bench_distort(x: torch.Tensor, device: torch.device, repeats: int, n: int = 1000) -> dict:
    """(d) throughput of the distorted-digit generator: n distortions in one batch (no target)."""
    xd, idx = x[:n].to(device), torch.arange(n, device=device)
    t = race({"distort": lambda: distort(xd, 0, idx)}, device, repeats)["distort"]
    return {"distort_batch": n, "distort_seconds": t, "distortions_per_s": n / t}


def write_json_atomic(obj: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per figure, best is kept (default 3)")
    parser.add_argument("--out", type=Path, default=Path("_build/bench/bench.json"), help="where to write the JSON")
    parser.add_argument("--estimate", metavar="PROFILE",
                        help="also predict this profile's wall time (python -m pretraining estimate) into the JSON")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats={args.repeats} is not allowed; it must be an int >= 1")
    try:
        device = get_device(args.device)
    except ValueError as e:
        parser.error(str(e))
    torch.manual_seed(0)
    train = load_dataset("mnist-10k").train
    x, y = train.x.float(), train.y

    result = {"machine": machine(device)}
    for name, fn in [("rbm", lambda: bench_rbm(x, device, args.repeats)),
                     ("members", lambda: bench_members(x, y, device, args.repeats)),
                     ("flops", lambda: bench_flops(x, y, device, args.repeats)),
                     ("fractions", lambda: bench_fractions(x, y, device, args.repeats, result)),
                     ("tutorial DBN", lambda: bench_tutorial_dbn(device, args.repeats)),
                     ("distort", lambda: bench_distort(x, device, args.repeats)),
                     ("random numbers", lambda: bench_rng(device, args.repeats)),
                     ("cluster", lambda: bench_cluster(device, args.repeats))]:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        result.update(fn())
    if args.estimate:
        print(f"running estimate --profile {args.estimate} ...", file=sys.stderr, flush=True)
        result["estimate"] = profile_estimate(args.estimate, device)
    write_json_atomic(result, args.out)

    m = result["machine"]
    print(f"\nmachine: {m['cpu_model']}, {m['cpu_cores']} cores, torch {m['torch_version']}, device {m['device']}")
    rows = [
        ("(a) RBM CD-1 784-500, 1 epoch", f"ours {result['rbm_ours_examples_per_s']:,.0f} ex/s",
         f"sklearn {result['rbm_sklearn_examples_per_s']:,.0f} ex/s", "rbm_vs_sklearn_speedup", 3.0),
        ("(b) 16 seeds 784-256-256-10, 1 epoch", f"batched {result['batched_seconds']:.2f} s",
         f"loop {result['loop_seconds']:.2f} s", "batched_vs_loop_speedup", 4.0),
        ("(c) fine-tune 784-1000x3-10", f"{result['finetune_gflops']:.1f} GFLOP/s",
         f"mm {result['matmul_gflops']:.1f} GFLOP/s", "finetune_fraction_of_matmul", 0.5),
        ("(e) RBM of (a) / 2048^2 matmul", f"{result['rbm_gflops']:.1f} GFLOP/s",
         f"mm {result['matmul_2048_fp32_gflops']:.1f} GFLOP/s", "rbm_fraction_of_matmul", 0.7),
        ("(e) chapter 3 quick fine-tuning", f"{result['finetune_quick_gflops']:.1f} GFLOP/s",
         f"mm {result['matmul_2048_fp32_gflops']:.1f} GFLOP/s", "finetune_quick_fraction_of_matmul", 0.5),
    ]
    print(f"{'benchmark':38s} {'ours':24s} {'reference':24s} {'ratio':>7s} {'target':>7s}")
    for label, ours, ref, key, target in rows:
        flag = "ok" if result[key] >= target else "MISSED"
        print(f"{label:38s} {ours:24s} {ref:24s} {result[key]:7.2f} {target:7.2f}  {flag}")
    dbn = result["tutorial_dbn_minutes_estimate"]
    print(f"(f) tutorial DBN 784-1000x3, 100 CD-1 epochs per layer on 50,000 digits: {dbn:.1f} min estimated "
          f"(target <= 30; its docs: {TUTORIAL_DBN['reported_minutes']} min on {TUTORIAL_DBN['reported_cores']} cores)"
          f"  {'ok' if dbn <= 30 else 'MISSED'}")
    print(f"(d) distorted digits: {result['distortions_per_s']:,.0f} per s (batches of {result['distort_batch']})")
    for row in result["member_rng"]["rows"]:
        print(f"(h) one CD-1 step's random numbers, {row['members']} members: one generator each "
              f"{1e3 * row['per_member_seconds']:.2f} ms, one call {1e3 * row['one_call_seconds']:.2f} ms: "
              f"the loop costs {row['member_rng_loop_vs_one_call']:.2f}x")
    print(f"(g) chapter 3 smoke study: local {result['ch3_smoke_local_seconds']:.1f} s, local-cluster:2 "
          f"{result['ch3_smoke_cluster_seconds']:.1f} s ({result['cluster_workers']}): ratio "
          f"{result['cluster_vs_local_speedup']:.2f}; {1000 * result['cluster_seconds_per_task']:.1f} ms per task, "
          f"cluster start {result['cluster_start_seconds']:.1f} s")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
