"""``python -m smart_app.cli`` runs the ``pml-risk`` command."""

import sys

from . import main

sys.exit(main())
