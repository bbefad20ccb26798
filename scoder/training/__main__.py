"""``python -m scoder.training``: one fine-tune from the command line (see ``scoder.training.trainer``)."""
from scoder.training.trainer import main

main()
