"""`python -m flow` is the `flow` command."""

import sys

from flow.cli import main

sys.exit(main())
