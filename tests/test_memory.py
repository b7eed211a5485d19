"""How many members fit in memory (core.memory): free memory read from /proc/meminfo, the search."""

import pytest
import torch

from pretraining.core.memory import free_memory_bytes, members_that_fit, memory_bytes, training_bytes


def test_free_memory_is_memavailable_and_the_total_when_it_cannot_be_read(tmp_path):
    info = tmp_path / "meminfo"
    info.write_text("MemTotal:       24000000 kB\nMemFree:         1000000 kB\nMemAvailable:   12345678 kB\n")
    assert free_memory_bytes(torch.device("cpu"), meminfo=str(info)) == 12345678 * 1024
    assert free_memory_bytes(torch.device("cpu"), meminfo=str(tmp_path / "absent")) == memory_bytes(torch.device("cpu"))
    assert 0 < free_memory_bytes(torch.device("cpu")) <= memory_bytes(torch.device("cpu"))


@pytest.mark.parametrize("budget", [0, 1, 999, 1000, 1001, 5 * 10**6, 10**12])
@pytest.mark.parametrize("most", [1, 7, 400])
def test_members_that_fit_is_the_largest_count_within_the_budget(budget, most):
    def bytes_for(m):
        return 1000 + 250 * m  # shared data + per-member weights
    fits = [m for m in range(1, most + 1) if bytes_for(m) <= budget]
    assert members_that_fit(bytes_for, budget, most) == (max(fits) if fits else 1)


def test_members_that_fit_with_the_training_estimate_and_bad_bounds():
    def run(m):
        return training_bytes(m, 7000, [784, 800, 800, 10], 20, greedy=False)
    budget = run(37)
    assert members_that_fit(run, budget, 400) == 37
    with pytest.raises(ValueError, match="most=0"):
        members_that_fit(run, budget, 0)
