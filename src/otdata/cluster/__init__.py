"""Sweeps on a cluster: the request check against `sinfo`, the jobs' states from the queue, and the
launcher logic behind `hydra/launcher=slurm|slurm_cpu|local` (see README, "On a cluster")."""
