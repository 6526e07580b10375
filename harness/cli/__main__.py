"""``python -m harness.cli``: the ``hilbench`` command."""

import sys

from harness.cli.app import main

sys.exit(main())
