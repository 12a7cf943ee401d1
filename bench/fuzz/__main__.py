"""Entry point: `python -m bench.fuzz stomp|amqp|sqs --target HOST:PORT ...`."""

from bench.fuzz.run import main

raise SystemExit(main())
