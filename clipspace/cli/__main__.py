"""``python -m clipspace.cli`` (what torchrun runs)."""

import sys

from clipspace.cli import main

sys.exit(main())
