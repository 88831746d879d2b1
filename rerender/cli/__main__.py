"""`python -m rerender.cli`: the `rerender` command."""

import sys

from rerender.cli import main

sys.exit(main())
