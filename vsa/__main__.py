"""``python -m vsa``: same as the ``vsa`` command."""

import sys

from vsa.cli import main

sys.exit(main())
