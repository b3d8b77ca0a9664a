// Package rocketmq is the RocketMQ backend of internal/mq: the mq.Producer
// of the pproxy on rocketmq-client-go v2.1.2 (the only obtainable version),
// and the consumer side (mq.GroupConsumer, mq.OffsetReader) on the
// project's own remoting client (internal/rocketmq/remoting; see
// consumer.go). It is the only package of the proxies that imports
// rocketmq-client-go.
//
// # Producer shape
//
// A Producer owns Options.Instances library producers, each a client
// instance of its own (a unique instance name per Producer and index, so a
// hot reload's new producer of a cluster can coexist with the old one:
// the library shares one client per instance name and refuses a second
// producer of a group on it). The library's own retries are off
// (WithRetry(0); its asynchronous send never retries anyway); the pproxy's
// single timeout retry replaces them.
//
// Routes are the producer's own: a NameServer lookup
// (GET_ROUTEINFO_BY_TOPIC over one remoting connection, trying the next
// NameServer on failure) gives the topic's writable queues of brokers with
// a master, sorted by (broker name, queue id) — the library's publish list
// is unsorted, and DDMQ's hash placement depends on this order. Routes are
// cached per topic, refreshed every RouteRefresh (pollNameServerInterval)
// and at once after a send fails with a route-like error (17, 16, 14);
// a refresh keeps the old route unless the NameServer says the topic is
// gone. Resolve never blocks for a cached topic; an unknown topic is looked
// up by one goroutine at a time, callers waiting bounded by their ctx.
//
// Target.Partition is the index into that sorted list and Target.Broker
// the broker name. Resolve follows behaviour.md §1.5: partitionId >= 0 →
// index mod n (a warning when >= n), -1 → NonNegMod(hashId, n), < -1 →
// random; AvoidBroker → random start, first queue of another broker.
//
// Produce converts the record (tags → TAGS, key → KEYS as is, properties
// as user properties, a UNIQ_KEY) and sends it with the library's
// SendAsync through a manual queue selector to exactly that queue. The
// library needs the topic in its own publish table for the broker
// address, and it fills that table only inside a send, publishing the
// queues before the broker addresses: concurrent first sends of a topic
// fail with "route info not found". So the first successful lookup of a
// topic also warms every instance (warmLibrary: a send to a broker name
// that cannot exist makes the library look the route up and then fail
// before sending anything) before the route is cached and Resolve
// answers. A broker added to a topic later is known to the library only
// after its own 30 s route refresh; sends to its queues fail meanwhile
// (mq.ErrTopicNotExist).
// Texts that cannot travel byte-exactly are refused with
// mq.ErrMessageIllegal rather than altered: invalid UTF-8 in key, tags or
// properties (the library sends properties inside its JSON header) and the
// property separators \x01 and \x02. Bodies above MaxMessageSize fail with
// mq.ErrMessageTooLarge before reaching the broker.
//
// # Order across instances
//
// Instances are used round-robin, but a queue with requests in flight
// stays on the instance that has them (a small map of "sticky" queues):
// requests to one queue then leave on one connection in call order, which
// keeps the mq.Producer promise of per-(topic, queue) order for pipelined
// callers while spreading independent sends over all instances.
//
// # Batches
//
// ProduceBatch (sendBatchSync, behaviour.md §1.10) sends the records of one
// (topic, queue) as SEND_BATCH_MESSAGE requests, split by MaxMessageSize
// and MaxBatchMessages, each sent from the previous one's completion; the
// first failure ends the chain. ProduceAutoBatch (§1.11) queues small
// records per (topic, queue) in a passive batcher (Add / Next(now, force) /
// Deadline) owned by one worker goroutine per key; a batch is due when it
// has maxBatchMessagesNumber records, when the next record would make its
// bodies reach maxBathBytes, or when its oldest record waited
// batchWaitMills; at most maxEncodeWorkerForEachBroker requests per key are
// in flight, records arriving meanwhile accumulate. A batch of one is a
// plain SEND_MESSAGE. Workers exit after a minute without work. DDMQ's
// worker fairness knob (maxContinuouslyRunningMills) has no counterpart:
// each key has its own goroutine.
//
// # Completion
//
// Every request is an op in its instance's pending set; finish completes
// it exactly once (compare-and-swap) and calls done. Refusals are
// reported from a goroutine of ours, never from Produce itself. Results:
// any send status (SEND_OK, FLUSH_DISK_TIMEOUT, ...) is success (non-OK is
// logged); errors go through translate (errors.go), the only place that
// maps library, broker and network errors to mq sentinels. Timeouts: the
// library caps every asynchronous send at 3s, so SendTimeout and
// BatchTimeout act as min(value, 3s).
//
// Close refuses new records, makes the auto-batch workers send what they
// hold, waits (bounded by ctx) for the pending sets to empty, fails the
// rest with mq.ErrClosed, then write-locks sendMu (no hand-over in
// progress: the library's shutdown flag is unsynchronised), cancels the
// context of every library send (so the library drops its waiters at
// once), shuts the instances down and waits for our goroutines.
//
// # Goroutines
//
//   - the library's per instance: connection readers, a goroutine per
//     send in flight, periodic tasks (route, heartbeat; they sleep up to
//     10s before noticing a shutdown: LingeringGoroutines);
//   - ours: route lookups (one per topic at a time), the route refresher,
//     rejection reporters, one auto-batch worker per active (topic,
//     queue). All start through goBG and are counted in Producer.bg; Close
//     waits for them. (goBG runs what starts after Close began waiting
//     untracked: only refusal reports can, and a WaitGroup must not be
//     incremented from zero during Wait.)
//
// # Locks
//
// Producer.sendMu (read-held while a request is handed to the library) is
// taken before clientInstance.mu and stickyMu; autoBatcher.mu before
// abWorker.mu; routeTable.mu and autoBatcher.mu before bgMu;
// nameServers.mu, stickyMu and bgMu are leaves.
//
// # Cost
//
// rocketmq-client-go writes every request frame in four write calls
// (length, header length, header, body) on an unbuffered connection; in
// `make bench-produce BENCH_ARGS=-backend rocketmq` these syscalls are
// about a third of pproxy's CPU. The direct library producer pays the same.
//
// # Process-wide library settings
//
// See producer_lib.go: primitive.PanicHandler is set (the library's async
// send dereferences a nil response after every timeout, and without a
// handler its recover wrapper does not recover: the process dies), and rlog
// is routed to zap one level lower.
package rocketmq
