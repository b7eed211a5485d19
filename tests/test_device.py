"""How the CPU threads wait (core.device): the machine's load read from /proc/stat, and the policy."""

import os
import threading

import pytest
import torch

from pretraining.book import cli
from pretraining.book.specs import load_spec
from pretraining.core.device import busy_cpus, openmp_wait_policy, resolve_precision, use_precision


def _stat(path, busy, idle):
    # cpu user nice system idle iowait irq softirq
    path.write_text(f"cpu  {busy} 0 0 {idle} 0 0 0\ncpu0 1 0 0 1 0 0 0\n")


def test_busy_cpus_is_the_busy_share_of_the_ticks_between_two_readings_times_the_cpus(tmp_path):
    stat = tmp_path / "stat"
    _stat(stat, busy=1000, idle=1000)
    later = threading.Timer(0.05, _stat, (stat, 1000 + 25, 1000 + 75))  # 25 % busy in between
    later.start()
    busy = busy_cpus(0.3, stat=str(stat))
    later.join()
    assert busy == pytest.approx(0.25 * os.cpu_count())


def test_busy_cpus_is_none_when_the_load_cannot_be_read(tmp_path):
    assert busy_cpus(0.01, stat=str(tmp_path / "missing")) is None
    stat = tmp_path / "stat"
    _stat(stat, busy=5, idle=5)
    assert busy_cpus(0.01, stat=str(stat)) is None  # no ticks passed
    real = busy_cpus(0.1)
    assert real is None or 0 <= real <= os.cpu_count() + 1e-9


@pytest.mark.parametrize("busy, policy", [(0.0, None), (0.49, None), (0.5, "PASSIVE"), (1.7, "PASSIVE"),
                                          (None, "PASSIVE")])
def test_threads_spin_only_on_an_idle_machine(busy, policy):
    assert openmp_wait_policy(busy) == policy


def test_the_run_sets_the_kernels_policy_from_the_load_and_says_so(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    monkeypatch.setattr(cli, "busy_cpus", lambda: 1.2)
    assert cli._set_wait_policy() == "sleep when idle (1.2 CPUs busy)"
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setattr(cli, "busy_cpus", lambda: 0.1)
    assert cli._set_wait_policy() == "spin, then sleep (0.1 CPUs busy)"
    assert "OMP_WAIT_POLICY" not in os.environ


def test_precision_auto_is_tf32_on_cuda_and_exact_elsewhere_and_tf32_needs_cuda():
    assert resolve_precision("auto", torch.device("cuda")) == "tf32"
    assert resolve_precision("auto", torch.device("cpu")) == resolve_precision("fp32", torch.device("cuda")) == "fp32"
    with pytest.raises(ValueError, match="precision='tf32' is not allowed on device 'cpu'"):
        resolve_precision("tf32", torch.device("cpu"))
    with pytest.raises(ValueError, match="precision='bf16' is not allowed; use one of auto, fp32, tf32"):
        resolve_precision("bf16", torch.device("cpu"))


def test_using_a_precision_sets_torchs_float32_matmuls(monkeypatch):
    before = torch.get_float32_matmul_precision()
    try:
        assert use_precision("auto", torch.device("cpu")) == "fp32"
        assert torch.get_float32_matmul_precision() == "highest" and not torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.set_float32_matmul_precision(before)


def test_a_tf32_run_on_the_cpu_is_refused_in_one_line_before_any_work():
    spec = load_spec("03_depth_study")
    values = {**spec.defaults(), "device": "cpu", "precision": "tf32"}
    assert spec.problems(values) == ["precision='tf32' is not allowed with device='cpu': TensorFloat-32 is a CUDA "
                                     "feature; use precision 'auto' or 'fp32'"]


def test_tf32_with_device_auto_is_refused_when_the_chapter_starts_on_a_machine_without_cuda():
    from pretraining.book import runtime
    from pretraining.book.specs import ParameterError

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: tf32 is allowed")
    spec = load_spec("04_function_space")
    with pytest.raises(ParameterError, match="precision='tf32' is not allowed on device 'cpu'"):
        runtime.start(spec, {**spec.defaults(), "precision": "tf32"})
