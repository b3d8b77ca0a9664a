// Package rocketmq is a RocketMQ-protocol TEST AND DEVELOPMENT broker: one
// process plays the NameServer and one or more brokers (each broker name on
// its own listener, all in one cluster), speaking the remoting protocol
// (JSON header codec) well enough for apache/rocketmq-client-go/v2 v2.1.2
// and for this project's own remoting client. It is NOT a production
// broker: no replication, no commit log, no time-based retention (only an
// optional bound on bytes), no ACLs, no transactions, no SQL92 filters,
// everything held in memory (optionally mirrored to files).
//
// Start it with Start(Options{...}) (or testenv.StartRocketMQ in tests, or
// cmd/rmqbroker standalone) and point clients at NameServerAddr() with
// primitive.NewPassthroughResolver; admin topic creation needs
// admin.WithBrokerAddrCreate(BrokerAddrs()[name]). Close stops everything.
// For tests the Server also offers direct access: CreateTopic (on every or
// some brokers), ConsumerIDs, ConsumerOffset, MaxOffset and HeldPulls (which
// consumer connections are long-polling which queue — a way to wait for a
// rebalance to settle).
//
// # What it answers
//
//	105 route (lists every broker holding the topic; TBW102 lists all brokers while auto-create is on; 17 if none)
//	106 cluster info, 206 topic list, 216 delete topic (on every broker: routes derive from the brokers)
//	17 create/update topic, 215 delete topic (messages, files and its consumer offsets)
//	10/310/320 send (single, V2, batch): properties stored byte-exact; msgId = offset message id(s)
//	11 pull with long polling, commitOffset, server-side tag filtering
//	34 heartbeat, 35 unregister, 38 consumer list, 40 sent to the group on every membership change
//	14/15 query/update consumer offset (22 when none), 29 search by time, 30 max offset, 31 min offset
//	36 send back → %RETRY%<group> after a delay level, %DLQ%<group> after maxReconsumeTimes
//	41/42 lock/unlock (orderly consumers), 201 subscription groups
//	anything else → 3 (REQUEST_CODE_NOT_SUPPORTED)
//
// # Behaviour and deliberate deviations
//
//   - Topics: auto-created on the receiving broker by a send unless
//     DisableAutoCreateTopics (queue count min(defaultTopicQueueNums,
//     DefaultQueues)). %RETRY%<group> (1 queue) is created on a group's
//     heartbeat and, unlike a real broker, also when its route is asked for,
//     so a fresh push consumer sees its retry queue at once rather than after
//     the client's 30 s route refresh. %DLQ%<group> is readable (perm 6; a
//     real broker makes it write-only) so tests can inspect it.
//   - PULL follows RocketMQ's status rules (see pullLocked): 19 at the end,
//     21 outside the queue, 20 when nothing matches the tags. At most 32
//     messages and 256 KiB per answer. With the suspend flag a PULL that
//     finds nothing is held for min(suspendTimeoutMillis, MaxPullHold) and
//     answered as soon as a matching message arrives; Close answers all held
//     pulls.
//   - QUERY_CONSUMER_OFFSET answers 22 whenever the group has no stored
//     offset (a real broker answers 0 for a queue whose first message is
//     still in memory).
//   - Send-back: the message is copied with RETRY_TOPIC (first time),
//     ORIGIN_MESSAGE_ID and reconsumeTimes+1, delayed by level
//     3+reconsumeTimes (or the requested level), then appended to
//     %RETRY%<group>; with reconsumeTimes ≥ maxReconsumeTimes (or a negative
//     level) it goes to %DLQ%<group> at once. Delays come from
//     Options.DelayLevels: by default RocketMQ's table divided by 100
//     (level 3 = 100 ms, level 4 = 300 ms, ...). Producer messages with a
//     DELAY property are delayed the same way (via SCHEDULE_TOPIC_XXXX).
//   - Consumer membership is per broker, as in RocketMQ: a client is a
//     member of a group on a broker from its first heartbeat there until it
//     unregisters (35), its connection to that broker closes, or it sends no
//     heartbeat for ClientExpiry (default 120 s). Each change sends code 40
//     to every remaining member.
//   - Messages are kept until their topic is deleted (min offset 0), unless
//     Options.RetentionBytes bounds a broker's stored bytes: then the oldest
//     segments (see Storage) are dropped, the min offset of their queue
//     advances (GET_MIN_OFFSET, PULL's minOffset and status 21 below it,
//     timestamp search and send-back see only what is kept). A queue's
//     newest segment and the delayed messages waiting in
//     SCHEDULE_TOPIC_XXXX are never dropped, so a broker may hold up to
//     about 1 MiB per non-empty queue more than the bound.
//
// # Storage
//
// A queue keeps its messages in the PULL layout back to back in byte
// segments (4 KiB for its first, doubling up to 1 MiB; a larger message
// gets one of its own) and a 16-byte index entry per message (position,
// size and a hash of its tags; tags, store time and commit-log offset are
// read from the stored bytes when needed). A 1 KiB message costs about
// 1.16 KiB of heap (its stored header, topic and properties included), and
// the segments hold no pointers for the garbage collector to scan. A PULL
// answer's body is the stored bytes themselves, written with writev, not
// a copy; segments are never rewritten.
//
// # Persistence (Options.DataDir)
//
// Per broker, <DataDir>/<broker>/: topics.json (rewritten on every topic
// change), offsets.json (consumer offsets and the delay scheduler's
// progress; written every second when changed and on Close) and
// store/<topic>/<queueId>.log (append-only, each record a message in the
// PULL layout). Start reads everything back (then applies RetentionBytes;
// the files themselves are never trimmed); a queue file with a torn tail
// is truncated after its last complete message. Appends are written to the
// OS (surviving a process crash); Options.SyncWrites adds an fsync per
// append. Offsets changed in the last second before a crash are lost (a
// clean Close loses nothing).
//
// # Concurrency
//
// Per connection one reader goroutine (requests are handled in order; it
// reuses one read buffer for frames up to 1 MiB) and one writer goroutine
// (every answer and broker → client request is queued without blocking
// and written together with the frames queued behind it, up to 128 frames
// or 1 MiB per writev; a client with more than 4096 frames or 64 MiB
// queued is disconnected). Held PULLs are answered once per request that
// stored messages, so they get a whole batch. Per broker one scheduler and
// one housekeeping goroutine, and one timer per held PULL. A broker's
// state is guarded by one mutex. A malformed frame closes only its
// connection.
package rocketmq
