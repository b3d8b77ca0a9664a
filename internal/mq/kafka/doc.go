// Package kafka is the Kafka backend of internal/mq, on sarama: the
// mq.Producer (AsyncProducer), the mq.GroupConsumer (ConsumerGroup) and the
// mq.OffsetReader (plain requests). It is the only package of the proxies
// that imports sarama.
//
// # Shape
//
// A Producer owns Options.Instances sarama clients, each with one
// AsyncProducer. Records of one (topic, partition) always go to the same
// instance (a hash of both picks it), so the mq.Producer promise that one
// caller's records to a partition are stored in call order holds with any
// number of instances. (DDMQ picked an instance at random per record, which
// can reorder two concurrent sends to one partition; spreading by partition
// keeps the load spread without that.) Instance 0's client also serves
// Resolve's metadata.
//
// Each record carries a *pending in ProducerMessage.Metadata: its done
// callback and its size. Completion goes through Producer.complete, which
// calls done exactly once (compare-and-swap), returns the bytes to the
// buffer budget and removes the record from its instance's pending set.
//
// # Batching
//
// Flush.Frequency, Flush.Bytes and Flush.Messages are all 0, which makes
// sarama's broker producer flush as soon as it can: a lone record goes out at
// once in a request of its own. sarama allows one produce request in flight
// per partition (its partition "muter", like Kafka's RecordAccumulator);
// records arriving for a partition while its request is in flight accumulate
// and leave together in the next request, up to MaxMessageBytes per
// partition batch. So concurrent sends coalesce without a linger delay (the
// tests count produce requests at the broker to confirm both halves).
// KafkaConfiguration.batchSize is therefore not mapped to Flush.Bytes: with
// no Flush.Frequency, sarama would hold records until that many bytes
// accumulated.
//
// # Goroutines
//
//   - sarama's own goroutines, per instance; stopped by AsyncClose and by
//     closing the client.
//   - one drainer per instance: reads Successes and Errors until both are
//     closed and completes the records. Owned by the Producer; Close waits.
//   - metadata fetchers started by Resolve for topics not yet in the
//     client's cache, one per topic at a time, bounded by
//     Options.MetadataTimeout; callers wait for them bounded by their ctx.
//   - reporters of immediate rejections (closed, buffer full, too large),
//     so that done is never called from Produce itself.
//
// The last two are counted in Producer.bg; Close waits for them, bounded
// by its ctx.
//
// # Locks
//
// Producer.sendMu (read-held while a record is handed to sarama) before
// instance.mu (the pending set). Producer.fetchMu and hub.mu are leaves.
//
// # Non-obvious
//
//   - Close with an expired ctx fails the remaining records with ErrClosed
//     and then closes the clients, which makes sarama give up its in-flight
//     requests; records failed that way may still have been stored.
//   - A Resolve for a known topic never blocks; for an unknown one, sarama
//     refreshes metadata (retrying UNKNOWN_TOPIC_OR_PARTITION up to
//     Metadata.Retry.Max times, RetryBackoff apart) in a fetcher goroutine.
//   - Records larger than MaxMessageBytes are refused in Produce with
//     ErrMessageTooLarge; sarama would refuse them with an untyped
//     ConfigurationError.
//
// # Consumer
//
// A GroupConsumer is one member of the group ConsumerOptions.Group; Run
// creates a sarama client and ConsumerGroup and calls Consume in a loop
// (one call per generation) until its ctx ends, then closes the group,
// which leaves it. Errors of a generation (unreachable brokers, a missing
// topic, a lost session) are logged and retried after RetryBackoff, the
// wait doubling (up to 10s) while they persist.
// sarama's error channel is drained into the log.
//
// Assignment is eager range, as DDMQ's Kafka consumer: a rebalance ends
// every claim of the member, and the next generation starts them anew.
// Per generation a session (the sarama handler) does:
//
//   - Setup: one OffsetFetch of the claimed partitions to the coordinator,
//     for the commit metadata (sarama's offset manager fetches the same
//     offsets but keeps the metadata to itself); then the handler's Setup;
//     then the flusher, which calls the session's Commit every
//     CommitInterval.
//   - ConsumeClaim, per partition: a pump goroutine converts sarama's
//     messages into mq.Deliveries on the claim's unbuffered Messages
//     channel; the handler's Claim runs on the ConsumeClaim goroutine. The
//     claim's Context is a child of the session's, also cancelled when
//     sarama closes the partition's messages (it gives a partition up on
//     OFFSET_OUT_OF_RANGE mid-stream; the claim ending then ends the
//     generation and the member rejoins). A handler that returns early
//     keeps the partition until the generation ends (returning would end
//     the generation for every member).
//   - Cleanup, once every ConsumeClaim has returned: stop the flusher, one
//     last Commit, then the handler's Cleanup. This is the flush "before
//     the claim is released": with eager assignment all claims of a member
//     end together, and sarama releases the partitions (and the member
//     rejoins) only after Cleanup. One flush per generation rather than
//     one per claim: see "Shared connection" below.
//
// Claim.Initial is sarama's InitialOffset (where the messages start) with
// the metadata fetched in Setup if that fetch returned the same offset;
// otherwise the metadata is "" (redelivery, never loss). No committed
// offset, or one outside the log (sarama's ResetInvalidOffsets then starts
// at InitialOffset's policy), gives Offset -1.
//
// Claim.Commit hands (offset, metadata) to sarama's partition offset
// manager, which keeps its own position: MarkOffset only moves it forward
// and ResetOffset only back or to the same offset, so Commit calls
// ResetOffset then MarkOffset, and exactly one applies; the stored value is
// always the last Commit's, metadata-only changes included. Unchanged
// values and negative offsets are not passed on; neither is anything after
// the claim ended (its Context done and the handler's Claim returned).
// Commits are fenced by the member's generation: a member that lost its
// session cannot overwrite the new owner's offsets (the broker refuses;
// the refusal is logged).
//
// Backpressure: a handler that does not read Messages blocks only its
// partition's pump; sarama's partition consumer then fills its buffer
// (ChannelBufferSize) and stops fetching that partition.
//
// # Shared connection
//
// sarama keeps one connection per broker and sends one request at a time
// on it, waiting for the response with the connection locked. Fetches
// long-poll up to FetchMaxWait; heartbeats, commits and joins to a
// coordinator that also leads consumed partitions wait behind them. Keep
// FetchMaxWait well below HeartbeatInterval and RebalanceTimeout (the
// defaults 500ms, 3s and 60s do; the tests use 50ms, 100ms and 2s).
//
// # Offset reader
//
// OffsetReader serves getConsumeStats and the low-level API without a
// group membership. Partitions and HighWatermarks use the client's
// metadata and one ListOffsets (latest) per leader, in parallel; Committed
// and Commit send OffsetFetch / OffsetCommit (generation -1, no member id)
// to the group's coordinator, retrying coordinator moves. kfake answers
// GROUP_ID_NOT_FOUND for a group it never saw where Kafka answers offset
// -1; both mean "no committed offsets" (also in the consumer's Setup).
// Kafka accepts a memberless Commit only while the group has no members.
//
// Fetch sends one FetchRequest and decodes record batches (skipping
// control batches; offsets below the requested one are dropped) and
// legacy message sets (magic 0 and 1, relative offsets in compressed
// wrappers of magic 1). Because a fetch long-polls and would block every
// other request on a shared connection, each Fetch borrows a connection of
// its own from a small per-broker pool (at most 4 idle, dropped after 4
// min idle).
//
// Every OffsetReader call runs its requests on a goroutine and returns at
// ctx's end with mq.ErrTimeout; the request then finishes in the
// background, bounded by the network timeouts. Close closes the client and
// the pool and waits for those goroutines.
package kafka
