"""`python -m hub.cli` runs the `spe` command."""
import sys

from hub.cli import main

sys.exit(main())
