"""``python -m causalunlearn.cli``: the same as the ``causalunlearn`` command."""

import sys

from causalunlearn.cli.app import main

sys.exit(main())
