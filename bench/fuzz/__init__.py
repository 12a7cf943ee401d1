"""Wire fuzzing of a running broker: real clients' bytes, mutated, sent over real sockets.

For each protocol (STOMP, AMQP 1.0, SQS over HTTP) the seeds are recorded, not written by
hand: a real client (stomp.py, python-qpid-proton, boto3) runs a short valid session
through a recording relay (`seeds.py`), and what it sent becomes the corpus. Each fuzz
case takes one seed, applies a few seeded mutations (`mutate.py`: bit flips, byte
runs, splices, length fields made huge, tokens a parser special-cases), sends the result
on a fresh connection, half-closes it and reads until the broker closes or answers
nothing more (`run.py`).

A bystander checks the broker around the cases: before them it stores persistent
messages with receipts on a queue no seed names; every so often it makes a receipt round
trip (the broker still serves others); after them it drains its queue and every stored
message must be there, once. With a broker pid, RSS is sampled before and after, so a
soak shows whether memory stays flat.

`python -m bench.fuzz stomp|amqp|sqs --target HOST:PORT [--cases N] [--seed S]
[--pid PID] [--bystander HOST:STOMP_PORT]` runs a soak against a broker you started
(bench/brokers/zonemq.sh); tests/fuzz runs a bounded count of the same cases in CI.
Cases are reproducible: case i of seed S is always the same bytes.
"""
