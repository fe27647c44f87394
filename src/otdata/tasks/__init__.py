"""One module per Hydra task (`task=<name>`), each with `run(cfg) -> dict`."""
