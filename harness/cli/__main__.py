"""``python -m harness.cli``: the ``hilbench`` command."""

import sys

from harness.cli.commands import main

sys.exit(main())
