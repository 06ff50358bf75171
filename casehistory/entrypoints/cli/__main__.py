"""`python -m casehistory.entrypoints.cli`."""

import sys

from casehistory.entrypoints.cli.main import main

sys.exit(main())
