"""bench: a load generator for any STOMP broker, plus hot-path micro-benchmarks.

`python -m bench <scenario> --target stomp://127.0.0.1:61613 ...` (see bench/README.md).
The load generator speaks its own lean STOMP 1.2 (bench.stompclient) so that the client
is never the bottleneck; it reports its own CPU so that can be checked.
"""
