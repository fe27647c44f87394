"""The launcher classes and their config schemas, registered with Hydra (see the package doc)."""
# No `from __future__ import annotations`: Hydra executes plugin modules before adding them to
# sys.modules, and dataclasses cannot resolve string annotations then.

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore
from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf, SlurmQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher, SlurmLauncher

from otdata.cluster.launcher import SweepLauncherMixin


@dataclass
class OtdataSlurmConf(SlurmQueueConf):
    _target_: str = "hydra_plugins.otdata_launcher.launcher.OtdataSlurmLauncher"
    #: Refuse, before submitting, a request that no node of the partition can satisfy (`sinfo`).
    check_request: bool = True
    #: How long a job may be gone from the queue without its result before it counts as lost.
    lost_after_s: int = 120
    #: Seconds between two looks at the queue.
    poll_s: float = 5.0


@dataclass
class OtdataLocalConf(LocalQueueConf):
    _target_: str = "hydra_plugins.otdata_launcher.launcher.OtdataLocalLauncher"
    check_request: bool = False
    lost_after_s: int = 120
    poll_s: float = 1.0


class OtdataSlurmLauncher(SweepLauncherMixin, SlurmLauncher):
    """Each job of a sweep as a task of one SLURM array job."""


class OtdataLocalLauncher(SweepLauncherMixin, LocalLauncher):
    """Each job of a sweep as a local submitit process (the SLURM path, on one machine)."""


ConfigStore.instance().store(group="hydra/launcher", name="otdata_slurm", node=OtdataSlurmConf,
                             provider="otdata")
ConfigStore.instance().store(group="hydra/launcher", name="otdata_local", node=OtdataLocalConf,
                             provider="otdata")
