"""taskhub's built-in tasks, one module per task (installed as ``taskhub_plugins``).

Each module registers its task through the same ``taskhub_register_tasks`` hook a
third-party plugin uses.
"""
