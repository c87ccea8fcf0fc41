"""``python -m taskhub``: the entry ``torchrun`` and ``accelerate launch`` start (``-m taskhub``)."""

from taskhub.cli import main

main()
