"""``python -m aekit`` (also what ``torchrun -m aekit train ...`` runs)."""

import sys

from .cli import main

sys.exit(main())
