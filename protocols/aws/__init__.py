"""Amazon SQS over the broker core: AWS JSON 1.0 and Query protocols on one HTTP port,
and Amazon SNS (Query) beside it on the same port: sns.py (its mapping, the actions and
fan-out), sns_wire, sns_topics, sns_envelope, sns_http, sns_authz.

Modules: listener (aiohttp glue, auth, protocol detection), wire (Query form → JSON shape,
XML and error rendering; sans-IO), sqs (the message actions: send, receive, delete,
visibility, their batches; routes every action), queue_actions (the queue actions:
create, attributes, purge, tags, permissions...), queues (SQS attributes, tags and their
journal records), attributes (message attributes ↔ core properties), md5, fifo
(deduplication, sequence numbers), moves (message move tasks), sigv4, errors (the one
error table, and the one mapping of core errors to it). Pull delivery itself is the
core's: broker/core/leases.py.

Queues. SQS queue ``orders`` of the default region is the core queue ``orders``: STOMP
``/queue/orders``, AMQP ``queue://orders``, URL ``http://<host>:<port>/<account_id>/orders``
(host as the client addressed us). Every core queue with a valid SQS name is visible to
SQS (default attributes until set); ``.fifo`` names are FIFO queues. Queues and topics
are per region: a request is in its SigV4 credential scope's region (unsigned: the
default), and another region's ``orders`` is the core queue ``AWS.SQS.<region>.orders``
(regions.py, the one mapping). Attributes and tags are
journal records (destination metadata, owner "sqs"; queues.py), durable before
CreateQueue, SetQueueAttributes, TagQueue, UntagQueue, Add/RemovePermission or
DeleteQueue answers. A core refusal (CoreError) is answered with the SQS error of
errors.CORE_ERRORS, not a 500.

SQS message → core Message (SendMessage):
  MessageBody (UTF-8) → body, text=True   persistent=True (journaled before the response)
  MessageAttributes → properties: String → str, Binary → bytes, Number → str (its exact
      text); a type that the value does not tell (Number, ``String.custom`` ...) is
      recorded in property ``AWS.SQS.Types`` = ``name=Type;...``
  MessageGroupId → group_id (STOMP header ``JMSXGroupID``)
  SentTimestamp ← timestamp (ms; set by the core at send)
  MessageId ← the core message id, a UUID made by SendMessage (STOMP ``message-id`` is
      the same string); a message another protocol sent shows the uuid5 of its core id
      ("ID:..."), the same on every receive (sqs.sqs_message_id, the one mapping)
  SenderId → property ``AWS.SQS.SenderId`` (access key id, else the account id)
  MessageDeduplicationId → ``AWS.SQS.MessageDeduplicationId`` (FIFO; content-based: the
      SHA-256 of the body); SequenceNumber → ``AWS.SQS.SequenceNumber`` (FIFO)
  MessageSystemAttributes.AWSTraceHeader → ``AWS.SQS.AWSTraceHeader``
  DelaySeconds → held by the lease layer, put on the queue when due (journaled at once;
      after a restart a still-delayed message is visible at once)
Properties in the ``AWS.SQS.`` namespace (which SQS clients cannot use: names starting
with ``AWS.`` are reserved) reach STOMP consumers as headers of the same name.

core Message → SQS message (ReceiveMessage), whichever protocol sent it:
  body → Body (decoded as UTF-8, invalid bytes replaced); properties (except the
  ``AWS.SQS.`` ones) → MessageAttributes: str → String, bytes → Binary, int/float (and
  AMQP's numeric typed values) → Number, bool → String "true"/"false", other AMQP
  values → String (their STOMP text), unless ``AWS.SQS.Types`` says otherwise.
  So a STOMP header ``color:red`` is the String attribute ``color``.
  ApproximateReceiveCount = delivery count + 1 (a STOMP NACK or a closed STOMP
  subscription counts too); ApproximateFirstReceiveTimestamp = first SQS receive (in
  memory); MessageGroupId ← group_id; SenderId ← property, else the account id.
  Not mapped: correlation-id, reply-to, type, content-type, priority and expires of
  messages from other protocols (an expired message is not delivered, as on STOMP).

Visibility timeout: a received message is in flight on the queue (its STOMP consumers do
not get it either) until deleted, or until its deadline, when it returns to the front of
the queue with its delivery count raised. RedrivePolicy's maxReceiveCount moves a
message to the target queue when a receive would exceed it (AWS's rule), recording the
queue it left in property ``AWS.SQS.DeadLetterSourceQueue`` (hidden from SQS receivers,
a header for STOMP ones); retention (MessageRetentionPeriod) drops old messages when a
receive meets them. A queue created through SQS, or that SQS has sent to or received
from, has its own limit in the core (Core.set_own_limit, journaled): the [destinations]
rule "ActiveMQ.DLQ after max_redeliveries" never applies to it, whether a message comes
back by an expired visibility timeout, a broker stop or DeleteQueue closing the pull
subscription, a crash ending a receive, or a STOMP/AMQP consumer's NACK or disconnect
(those count as receives); only its RedrivePolicy dead-letters. Expired messages from
other protocols still go to ActiveMQ.DLQ, as on STOMP.

Message move tasks (StartMessageMoveTask, CancelMessageMoveTask, ListMessageMoveTasks;
moves.py): the source must be the RedrivePolicy target of some queue; one RUNNING task
per source; messages waiting in the DLQ when the task starts are moved, each in one
journal transaction, back to the queue they were dead-lettered from (a message without
that record, e.g. sent to the DLQ directly, goes to the DLQ's only source queue; with
several the task FAILs) or to DestinationArn, at MaxNumberOfMessagesPerSecond (1-500)
if given, as an asyncio task on the broker's loop; body and attributes are kept.

Checked against the AWS API reference (and tested): the error codes, HTTP statuses and
JSON/XML error shapes of the table in errors.py; queue-name, attribute, batch (10
entries, 1 MiB, distinct ids, id format), message-attribute (10, names, types, Number
range) and body-character rules; MD5s; idempotent CreateQueue; PurgeQueue once per 60
s, of pending, delayed and in-flight messages (their FIFO groups freed); FIFO rules
(group id required, dedup id or content-based, no positive per-message delay (0 is
accepted, as AWS does), sequence numbers of 20 digits with no leading zero, growing per
group, 5-minute window, DeduplicationScope, one in-flight batch per group); a stale
standard-queue handle deletes the message only while it waits unreceived, an expired
FIFO handle fails; the move-task request and result shapes (TaskHandle only while
RUNNING, DestinationArn and MaxNumberOfMessagesPerSecond only when given, MaxResults
1-10 default 1, most recent first, ApproximateNumberOfMessagesToMove fixed at the
start).

Knowingly different or missing:
- Message move tasks: a moved message gets a new MessageId and its receive count
  starts again (the journal never takes a message id back on a queue it has left);
  messages in flight in the DLQ are not moved; without a rate, messages move as fast
  as the loop allows (batches of 100). Task records (10 per source) are in memory: a
  broker stop cancels running tasks and a restart forgets them. Not an AWS error name:
  "not a DLQ", "a task is already running", "same source and destination" are
  InvalidParameterValue; cancelling a task that is not RUNNING is
  ResourceNotFoundException, as for an unknown handle.
- Queues with their own limit stay so for as long as they exist, also for STOMP/AMQP
  consumers (a NACK loop on such a queue never reaches ActiveMQ.DLQ).
- Add/RemovePermission and Policy/RedriveAllowPolicy are stored and returned, never
  enforced; KMS attributes are stored, nothing is encrypted. AddPermission checks AWS's
  rules (at most 7 actions, the shareable ones: ``*``, SendMessage, ReceiveMessage,
  DeleteMessage, ChangeMessageVisibility, GetQueueAttributes, GetQueueUrl; 12-digit
  account ids); the refusal texts are ours (AWS's are not in its references).
- Error texts checked against AWS's own (from SDK issue reports): a receipt handle of
  another queue, a malformed one, an expired one on ChangeMessageVisibility
  (InvalidParameterValue, not MessageNotInflight), an attribute's invalid type. Not
  checked (no source found): an invalid attribute name's and the tag limits' texts.
- SigV4 (header and presigned forms, ±15 min, scope checked, payload hashed): session
  tokens are refused (InvalidClientTokenId); with no users configured anything is
  accepted, but for a scope naming no AWS region (SignatureDoesNotMatch, as AWS).
- Regions: a queue URL has no region in its host (AWS's is sqs.<region>.amazonaws.com;
  ours is the host the client addressed), so the request's region picks the queue of a
  URL; a DLQ of another region is refused "Dead letter target does not exist" (AWS
  requires the source's region; its text for this case was not found). SNS
  ConfirmSubscription and Unsubscribe find the subscription in its ARN's region
  whatever the request's (their URLs are unsigned GETs); a subscription ARN of another
  region in other actions is NotFound (our choice). Move tasks resolve a SourceArn /
  DestinationArn in the ARN's region. Queue policies (SourceArn conditions) are
  stored, never evaluated, so their ARNs are not resolved at all.
- ReceiveRequestAttemptId is ignored; MessageDeduplicationId windows, first-receive
  timestamps and leases are in memory (a restart forgets them; in-flight messages come
  back visible, delayed ones visible at once). DeleteQueue is immediate (no 60 s
  QueueDeletedRecently); the 12-hour visibility ceiling is not enforced.
- Retention is applied when a receive meets an old message, not by a sweep, so counts
  may include messages past retention until then.
- STOMP/AMQP consumers of a FIFO queue ignore group locks; a long poll on a FIFO queue
  whose backlog is all in held groups sees another protocol's new message only at its
  next wake-up or when the wait ends.
- A send held back by the store limit past send_block_timeout (flow.py) is
  RequestThrottled with HTTP 503, where AWS's throttle is 403: boto3's default retry
  mode retries a 503 but not a 403. The broker stopping answers ServiceUnavailable 503.
- Unmodelled errors (InvalidParameterValue, MissingParameter...) use
  ``com.amazonaws.sqs#<Code>`` as ``__type``; SDKs read the x-amzn-query-error code.
"""
