"""``python -m deepnum``: the command line (see ``deepnum.cli``)."""
import sys

from deepnum.cli import main

sys.exit(main())
