"""A SLURM request is checked against `sinfo`'s partitions before anything is submitted."""

from __future__ import annotations

import pytest

from otdata.cluster.request import RequestError, check_request, check_trainer, parse_sinfo

SINFO = """cpu*|16|64000|(null)|1-00:00:00
gpu|32|256000|gpu:a100:4(S:0-1)|infinite
gpu|8|32000|gpu:2|2:00:00
"""
SHIPPED_GPU = {"partition": None, "cpus_per_task": 8, "gpus_per_node": 1, "tasks_per_node": 1,
               "mem_gb": 32, "timeout_min": 240}


def test_sinfo_lines_become_node_kinds():
    cpu, big, small = parse_sinfo(SINFO)
    assert (cpu.partition, cpu.default, cpu.cpus, cpu.mem_mb, cpu.gpus, cpu.time_min) == (
        "cpu", True, 16, 64000, 0, 1440)
    assert (big.gpus, big.time_min, small.gpus, small.time_min) == (4, float("inf"), 2, 120)


def test_a_request_that_fits_one_node_kind_passes():
    kind = check_request({**SHIPPED_GPU, "partition": "gpu"}, parse_sinfo(SINFO))
    assert kind.cpus == 32          # the 8-CPU GPU node's 2 h limit is too short for 240 min


def test_gpu_defaults_on_the_default_cpu_partition_are_refused_with_the_fix():
    with pytest.raises(RequestError) as error:
        check_request({**SHIPPED_GPU, "mem_gb": 100, "timeout_min": 2000}, parse_sinfo(SINFO))
    message = str(error.value)
    assert "partition 'cpu'" in message
    assert "gpus_per_node=1 but its nodes have no GPUs; fix: `hydra/launcher=slurm_cpu`" in message
    assert "mem_gb=100 but its nodes have at most 62 GB; fix: `hydra.launcher.mem_gb=62`" in message
    assert "timeout_min=2000 but its time limit is 1440 min; fix: `hydra.launcher.timeout_min=1440`" in message
    assert "cpus_per_task" not in message                       # 8 CPUs fit


def test_an_unknown_partition_names_the_ones_that_exist():
    with pytest.raises(RequestError, match=r"no partition 'gpus' \(partitions: cpu\*, gpu;"):
        check_request({**SHIPPED_GPU, "partition": "gpus"}, parse_sinfo(SINFO))


def test_numbers_that_fit_different_nodes_but_no_single_one_are_refused():
    mixed = parse_sinfo("mixed*|32|128000|(null)|infinite\nmixed*|8|64000|gpu:2|infinite\n")
    with pytest.raises(RequestError, match=r"no single node has cpus=16, mem_gb=32, gpus=1 together; "
                                           r"its nodes: 32 CPUs, 125 GB, 0 GPUs; 8 CPUs, 62 GB, 2 GPUs"):
        check_request({**SHIPPED_GPU, "cpus_per_task": 16}, mixed)


def test_cpus_count_every_task_of_a_node():
    request = {**SHIPPED_GPU, "partition": "gpu", "cpus_per_task": 32, "gpus_per_node": 1,
               "mem_gb": 20, "timeout_min": 60}
    assert check_request(request, parse_sinfo(SINFO)).cpus == 32
    with pytest.raises(RequestError, match="cpus_per_task=16 x tasks_per_node=4 but its nodes have "
                                           r"at most 32 CPUs; fix: `hydra.launcher.cpus_per_task=8`"):
        check_request({**request, "cpus_per_task": 16, "tasks_per_node": 4}, parse_sinfo(SINFO))


def test_the_gpu_request_follows_the_trainer_choice():
    with pytest.raises(RequestError, match=r"trainer=gpu but the jobs request no GPU.*`hydra/launcher=slurm`"):
        check_trainer({"gpus_per_node": 0}, "gpu")
    assert "will not use" in check_trainer({"gpus_per_node": 1}, "cpu")
    assert check_trainer({"gpus_per_node": 1}, "gpu") is None
    assert check_trainer({"gpus_per_node": 0}, "auto") is None
