"""``python -m simlabel_ext`` is the ``simlabel`` command (also the form ``torchrun -m simlabel_ext`` uses)."""
import sys

from simlabel_ext.cli import main

sys.exit(main())
