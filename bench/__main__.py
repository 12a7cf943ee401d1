"""Entry point: `python -m bench <scenario> --target stomp://host:port ...`."""

from bench.runner import main

raise SystemExit(main())
