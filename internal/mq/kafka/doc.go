// Package kafka is the mq.Producer for Kafka clusters, on sarama's
// AsyncProducer. It is the only package of the proxies that imports sarama.
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
package kafka
