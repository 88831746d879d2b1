"""`python -m rerender`: the `rerender` command."""

import sys

from rerender.cli import main

sys.exit(main())
