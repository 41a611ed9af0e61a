"""``python -m cdl ...``: the command line, the same as ``cdl ...`` (cdl.cli)."""
import sys

from cdl.cli import main

sys.exit(main())
