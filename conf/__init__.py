"""taskhub's Hydra configs (installed as the ``taskhub_conf`` package)."""
