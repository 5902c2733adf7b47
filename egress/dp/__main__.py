"""`python -m egress.dp`: see `egress.dp.cli`."""

import sys

from egress.dp.cli import main

sys.exit(main())
