"""Check a SLURM request against the partition before submitting it.

A request that no node can satisfy either pends forever (the scheduler keeps waiting for a node
that will never exist) or is refused by `sbatch` with a message that does not say which setting to
change. :func:`check_request` reads the partition's nodes with `sinfo` and refuses such a request
at once, naming each number that does not fit and the override that fixes it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

SINFO_FORMAT = "%P|%c|%m|%G|%l"


class RequestError(ValueError):
    """A SLURM request that the partition cannot satisfy (the message says what to change)."""


@dataclass(frozen=True)
class NodeKind:
    """One kind of node of a partition, as `sinfo` groups them."""

    partition: str
    default: bool
    cpus: int
    mem_mb: int
    gpus: int
    time_min: float  # inf: no limit


def _minutes(limit: str) -> float:
    """SLURM's `[days-]hours:minutes:seconds` (or `infinite`) in minutes."""
    if limit in ("infinite", "UNLIMITED", "n/a"):
        return float("inf")
    days, _, clock = limit.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    hours, minutes, seconds = parts
    return (int(days or 0) * 24 + hours) * 60 + minutes + seconds / 60


def _gpus(gres: str) -> int:
    """GPUs per node from `sinfo`'s `%G` (`gpu:2`, `gpu:a100:4(S:0-1)`, `(null)`)."""
    total = 0
    for item in gres.split(","):
        match = re.match(r"gpu(?::[^:(]+)?:(\d+)", item.strip())
        if match:
            total += int(match.group(1))
    return total


def parse_sinfo(text: str) -> list[NodeKind]:
    """The node kinds from `sinfo -h -o '%P|%c|%m|%G|%l'` output."""
    kinds = []
    for line in text.strip().splitlines():
        name, cpus, mem, gres, limit = line.split("|")
        kinds.append(NodeKind(partition=name.rstrip("*"), default=name.endswith("*"),
                              cpus=int(cpus.rstrip("+")), mem_mb=int(mem.rstrip("+")),
                              gpus=_gpus(gres), time_min=_minutes(limit)))
    return kinds


def read_partitions(timeout_s: float = 30) -> list[NodeKind]:
    """Every partition's node kinds, from `sinfo` (bounded by `timeout_s`)."""
    if shutil.which("sinfo") is None:
        raise RequestError("SLURM's `sinfo` is not on PATH: this machine cannot submit SLURM jobs. "
                           "Run the sweep here with `hydra/launcher=local`, or submit from a login "
                           "node of the cluster.")
    try:
        done = subprocess.run(["sinfo", "-h", "-o", SINFO_FORMAT], capture_output=True, text=True,
                              timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise RequestError(f"`sinfo` did not answer within {timeout_s:.0f} s: is the SLURM "
                           "controller reachable (`scontrol ping`)?") from None
    if done.returncode != 0:
        raise RequestError(f"`sinfo` failed: {done.stderr.strip()}")
    return parse_sinfo(done.stdout)


def _largest(kinds: list[NodeKind]) -> dict[str, float]:
    return {"cpus": max(k.cpus for k in kinds), "mem_gb": max(k.mem_mb for k in kinds) // 1024,
            "gpus": max(k.gpus for k in kinds), "time_min": max(k.time_min for k in kinds)}


def _fits(kind: NodeKind, need: dict[str, float]) -> bool:
    return (kind.cpus >= need["cpus"] and kind.mem_mb >= need["mem_gb"] * 1024
            and kind.gpus >= need["gpus"] and kind.time_min >= need["time_min"])


def check_request(params: dict, kinds: list[NodeKind]) -> NodeKind:
    """The node kind that can run one job of `params` (the launcher's settings), or RequestError
    naming every setting that does not fit the partition and the override that fixes it."""
    partition = params.get("partition")
    names = list(dict.fromkeys(k.partition + ("*" if k.default else "") for k in kinds))
    if partition:
        chosen = [k for k in kinds if k.partition == partition]
        if not chosen:
            raise RequestError(f"SLURM has no partition {partition!r} (partitions: "
                               f"{', '.join(names)}; * is the default). Fix: "
                               f"`hydra.launcher.partition=<one of them>`.")
    else:
        chosen = [k for k in kinds if k.default]
        if not chosen:
            raise RequestError(f"SLURM has no default partition; name one: "
                               f"`hydra.launcher.partition=<{'|'.join(names)}>`.")
        partition = chosen[0].partition
    tasks = int(params.get("tasks_per_node") or 1)
    need = {"cpus": int(params.get("cpus_per_task") or 1) * tasks,
            "mem_gb": float(params.get("mem_gb") or 0),
            "gpus": int(params.get("gpus_per_node") or 0),
            "time_min": float(params.get("timeout_min") or 0)}
    for kind in chosen:
        if _fits(kind, need):
            return kind
    top = _largest(chosen)
    problems = []
    if need["cpus"] > top["cpus"]:
        problems.append(f"cpus_per_task={params.get('cpus_per_task')} x tasks_per_node={tasks} "
                        f"but its nodes have at most {top['cpus']} CPUs; fix: "
                        f"`hydra.launcher.cpus_per_task={max(1, top['cpus'] // tasks)}`")
    if need["mem_gb"] > top["mem_gb"]:
        problems.append(f"mem_gb={params.get('mem_gb')} but its nodes have at most "
                        f"{top['mem_gb']:.0f} GB; fix: `hydra.launcher.mem_gb={top['mem_gb']:.0f}`")
    if need["gpus"] > top["gpus"]:
        fix = ("`hydra/launcher=slurm_cpu` (a CPU job; or `hydra.launcher.gpus_per_node=0`), or a "
               "GPU partition: `hydra.launcher.partition=<name>`" if top["gpus"] == 0
               else f"`hydra.launcher.gpus_per_node={top['gpus']}`")
        problems.append(f"gpus_per_node={need['gpus']} but its nodes have "
                        f"{top['gpus'] or 'no'} GPUs; fix: {fix}")
    if need["time_min"] > top["time_min"]:
        problems.append(f"timeout_min={params.get('timeout_min')} but its time limit is "
                        f"{top['time_min']:.0f} min; fix: "
                        f"`hydra.launcher.timeout_min={top['time_min']:.0f}`")
    if not problems:  # each number fits some node, but no single node has them all
        problems.append(f"no single node has cpus={need['cpus']}, mem_gb={need['mem_gb']:.0f}, "
                        f"gpus={need['gpus']} together; its nodes: "
                        + "; ".join(f"{k.cpus} CPUs, {k.mem_mb // 1024} GB, {k.gpus} GPUs"
                                    for k in chosen))
    raise RequestError(f"The SLURM request cannot run on partition {partition!r} (it would pend "
                       "forever or be refused):\n  - " + "\n  - ".join(problems))


def check_trainer(params: dict, accelerator: str | None) -> str | None:
    """The GPU request against the trainer choice: RequestError when `trainer=gpu` gets no GPU; a
    warning (returned) when GPUs are requested for `trainer=cpu`, which never uses them."""
    gpus = int(params.get("gpus_per_node") or 0)
    if accelerator == "gpu" and gpus == 0:
        raise RequestError("trainer=gpu but the jobs request no GPU (hydra.launcher.gpus_per_node=0). "
                           "Fix: `hydra/launcher=slurm` (1 GPU per job) or "
                           "`hydra.launcher.gpus_per_node=1`; or train on CPU: `trainer=cpu`.")
    if accelerator == "cpu" and gpus > 0:
        return (f"trainer=cpu but each job requests {gpus} GPU(s) it will not use; "
                "`hydra/launcher=slurm_cpu` requests none")
    return None
