// Package engine is cproxy's high-level pull engine for one consumer group
// (behaviour.md §2.1–§2.9): it reads the group's claimed partitions through
// mq.GroupConsumer, buffers the messages per (topic, qid), hands them out to
// SDK pull requests, processes their acknowledgements, redelivers on nack
// and timeout, applies the drop / dead-letter policy to exhausted messages,
// and commits the per-partition offset (lowest unfinished offset plus the
// tracker metadata listing finished offsets above it) — at-least-once.
//
// # Use
//
//	e := engine.New(engine.Options{Group: g, Log: log, Registerer: reg, DeadLetterOn: dlq})
//	e.Configure(engine.SettingsForUnits(units...))   // again on every config change
//	go consumer.Run(ctx, e.Handler(cluster))        // one GroupConsumer per G@B
//	b, err := e.Pull(ctx, topic, maxBatch, linger)  // Thrift pull
//	e.Submit(topic, qid, successOffsets, failOffsets) // Thrift submit / piggy-backed acks
//	... cancel the consumers' ctx, wait for Run, then e.Close()
//
// # Data model
//
// A part is one claimed partition (one mq.Claim), named by its (topic, qid);
// the QID is "<cluster>_<partition>" (Options.QID). It owns an
// offset.Tracker, the unfinished jobs by offset (jobIndex: a ring in
// offset order; a timed-out job stays in it until it is redelivered, so
// whichever receiver acknowledges first decides), a FIFO of fresh jobs, a
// FIFO of nacked jobs due for retry and a FIFO of timed-out jobs. Jobs
// admitted with a shared Kafka body are also in a group-wide FIFO that
// copies the bodies of the ones still unfinished ShareWindow later
// (DESIGN.md 27). Parts with
// work sit in a group-wide and a per-topic round-robin queue. A unitTopic
// (topic on a cluster) holds the Settings, the rate limiter, the
// concurrency count and the key chains of OrderKey.
//
// Job life cycle: admitted (tracker.Start) → ready → in flight (deadline
// scheduled) → acked: finished; nacked: retry timer → ready again, or
// exhausted; timed out: expired → redelivered, or exhausted (maxRetry).
// Exhausted: dropped (finished, logged on the "drop" logger, counted) or
// queued for the dead-letter worker (finished only after the publish
// succeeded; failures are retried with backoff and keep the offset
// uncommitted). Finished means tracker.Done: the offset may be committed.
// Nack retries (retryIntervals) and timeout redeliveries (maxRetry) are
// independent budgets, as in behaviour.md §2.6.
//
// # Goroutines
//
//   - Claim readers: ClaimHandler.Claim runs on the GroupConsumer's
//     goroutine, one per claimed partition. It reads Claim.Messages(),
//     admits each message (rate limiter, concurrency, byte budget, lag —
//     blocking only its own partition by waiting on the part's wake
//     channel), and performs the partition's commits, so commits of one
//     partition are never reordered. It returns when the claim's context is
//     done or the engine closes, after discarding the partition's jobs and
//     a final commit. Close waits for running Claim calls.
//   - The scheduler (one, owned by the Engine, started by New): a timer heap
//     of job deadlines, retry times, dead-letter retry times, long-poll
//     expiries, per-partition commit times and rate-limiter wake-ups, all
//     in terms of Options.Now. It sleeps until the earliest (at most 1 s)
//     and is kicked when an earlier timer is set.
//   - The dead-letter worker (one, only with Options.DeadLetter or
//     DeadLetterOn): publishes exhausted jobs one at a time, outside the
//     lock.
//   - Pull and Submit run on the callers' goroutines; a parked Pull waits on
//     its waiter channel, answered by whoever makes work available (reader,
//     Submit, scheduler) or by its expiry.
//
// Close stops everything in order: parked pulls answered (ErrClosed), new
// pulls refused, claim readers and engine goroutines signalled, then waited
// for. Readers make their final commit on the way out.
//
// # Locks
//
// One mutex, Engine.mu, guards all engine state, including the trackers
// (which are single-owner data structures: the mutex makes the owner "one
// goroutine at a time"). Calls out of the engine — Claim.Commit,
// Options.DeadLetter/DeadLetterOn, Options.Partitions — are made after
// unlocking; channel sends made under it never block (1-buffered wake and
// waiter channels). Drop and warning logs are written under it (zap's
// loggers do not call back). It is a leaf: no other lock is taken while
// holding it.
//
// # Non-obvious
//
//  1. Ordering "QID" allows one outstanding batch per partition (up to the
//     batch size), not one message; the next batch of that qid is handed out
//     only when every message of the previous one finished (including its
//     redeliveries and retries). "KEY" keeps one message per key in flight
//     per unit (topic on a cluster), in arrival (= offset) order across
//     retries; messages without a key are not ordered. A JsonPath orderKey
//     is not supported here and acts as no ordering (logged).
//  2. The lag check is maxStarted − committable >= maxConsumeLag with the
//     tracker's Next()−1−Committable(); a nacked or waiting job holds the
//     committable offset back, which is what makes the lag limit bite.
//  3. Concurrency counts unfinished jobs of a unit on this engine, including
//     jobs waiting for retry, for their key or for the dead-letter topic;
//     the byte budget (Options.MaxBufferedBytes) counts the same jobs'
//     bodies across the whole engine.
//  4. A revoked partition's jobs are discarded without being finished: the
//     tracker and the final commit still hold their offsets back, so the new
//     owner delivers them again (duplicates possible, no loss). Late acks
//     for them are ignored.
//  5. A claim that starts below its committed offset (the backend reset its
//     position) gets a fresh tracker at the first delivered offset rather
//     than skipping everything as "already finished".
//  6. A Pull whose context ends after messages were taken for it puts them
//     back at the head of their partition without counting an attempt.
//  7. The rate limiter is reserved before the other checks and kept while
//     the message waits for concurrency, bytes or lag, so a blocked message
//     does not take a second token.
//  8. A second claim of a partition that is still claimed (an overlapping
//     consumer restart) replaces the first: the old claim's jobs are
//     discarded and its reader returns without a final commit.
//  9. Metrics carry the group as a constant label (wrapped registerer), so
//     engines of several groups share the collectors; gauges change only by
//     deltas so a closing and a new engine of the same group can overlap.
package engine
