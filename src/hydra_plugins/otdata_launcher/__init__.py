"""otdata's Hydra launchers (`hydra/launcher=slurm`, `slurm_cpu`, `local`): submitit's, with a
request check before submitting, job ids and log paths printed, failed jobs reported as failures,
a bounded wait and Ctrl-C cancelling the jobs. The logic lives in :mod:`otdata.cluster`; Hydra only
loads launchers from the `hydra_plugins` package, hence this thin module."""
