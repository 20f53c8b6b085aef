"""``python -m clvnet``."""

import sys

from clvnet.cli import main

sys.exit(main())
