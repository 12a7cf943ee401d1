"""`python -m broker run ...` is `zonemq run ...`."""

import sys

from broker.cli import main

sys.exit(main())
