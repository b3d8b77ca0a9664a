// Package offset tracks, for one Kafka partition or one RocketMQ queue, which
// messages cproxy has handed out and which of them are finished, and derives
// the offset that may be committed (behaviour.md §2.8).
//
// # Ownership
//
// A [Tracker] is a pure data structure: no locks, no goroutines, no clock, no
// I/O. Exactly one goroutine (the partition's owner in cproxy) may use a
// given Tracker. No method blocks; the per-message methods allocate only
// when the ring of started offsets grows or shrinks. Start and
// Committable are O(1) amortised; Done is O(1) on contiguous offsets and
// O(log n) in the number of started offsets above Committable when there are
// gaps; Metadata is linear in that number. When a partition or queue is revoked by a rebalance its Tracker is
// simply dropped; the new owner builds a fresh one from the committed state.
//
// # Offsets and the "next offset" convention
//
// Offsets are the broker's message positions, 0 <= offset < math.MaxInt64.
// Like Kafka, RocketMQ and DDMQ's committed offsets, every value the tracker
// reports means "the offset of the next message to read":
//
//   - [Tracker.Committable] is the lowest offset that is not finished. Every
//     offset below it is finished (acknowledged, dropped, dead-lettered, or
//     skipped as a gap, see below), so it is the value to commit. It never
//     decreases. With nothing in flight it equals [Tracker.Next].
//   - [Tracker.Next] is the next offset the tracker expects to be started:
//     one past the highest offset started so far (and never below
//     Committable). cproxy's maxConsumeLag check "maxStarted − committable"
//     is Next() − 1 − Committable().
//
// # Operations
//
// [Tracker.Start] records that a message entered the action chain. It reports
// whether the message must be processed; false means "skip it, do not hand it
// out": the offset is below Next() (already finished, already started — a
// duplicate fetch —, or a gap that was skipped), or it is recorded as
// finished in the commit metadata the tracker was restored from (see
// "Restart without redelivery" below). A caller that wants to tell these
// apart can compare the offset with Next() before the call: offsets at or
// above Next() that are refused were finished before a restart.
//
// [Tracker.Done] records that a started message is finished: acknowledged,
// or dropped / sent back / dead-lettered by policy — any outcome after which
// the broker must not deliver it to this group again. A message that is
// nacked or waiting for redelivery is NOT done; it holds Committable back.
// Done reports whether it changed anything: an offset that was never started
// (or is below Committable) and a second Done of the same offset are ignored
// and report false.
//
// # Gaps
//
// Start must be called in increasing offset order, once for every message the
// broker delivers (RocketMQ queues are contiguous; Kafka partitions are not:
// compaction, transaction markers and aborted transactions leave offsets that
// are never delivered). When Start(o) is called with o > Next(), the offsets
// Next() .. o−1 are deemed not to exist and count as finished: they never hold
// Committable back. Consequently an offset below Next() that was never started
// can no longer be started (Start reports false), and Done ignores it.
//
// # Restart without redelivery: commit metadata
//
// Committable alone makes delivery at-least-once: after a crash everything
// from the first unfinished offset is delivered again, including messages that
// had already been acknowledged above it. To avoid redelivering those,
// [Tracker.Metadata] encodes the finished offsets above Committable into a
// short printable string that Kafka stores together with the committed offset
// (the OffsetCommit "metadata" field). A restarted cproxy calls
// [Decode](committed, metadata); the new tracker then reports Start == false
// for every offset listed, and keeps listing them in its own metadata until
// Committable passes them. An offset is listed only after Done, or when
// Start skipped it as a gap (it does not exist), so a lost, stale or
// truncated metadata string can cause duplicates but never loss. If Decode fails (foreign or corrupt metadata, or metadata that belongs
// to a different committed offset), the caller logs it and falls back to
// [New](committed). RocketMQ stores a bare offset; there the tracker is
// created with New and Metadata is not persisted.
//
// # Metadata format (version 1)
//
// The empty string means "nothing finished above the committed offset".
// Otherwise:
//
//	metadata = "ot1:" number(base) pair { pair }
//	pair     = number(holeLen − 1) number(doneLen − 1)
//	number   = [ lead { cont } ] final
//	lead     = "B" … "Z"                   (base-26 digits 1..25, no leading zero)
//	cont     = "A" … "Z"                   (base-26 digits 0..25)
//	final    = "0" … "9" | "a" … "v"        (one base-32 digit, 0..31)
//
// A number v is written as v/32 in base 26 with upper-case letters (nothing
// when v/32 is 0) followed by v%32 as a single base-32 digit, so values below
// 32 take one character and a number ends at its first character that is not
// an upper-case letter. base is the committed offset the metadata belongs to
// (Decode refuses metadata whose base differs from the committed offset it is
// given). Starting at base, the pairs alternate a run of unfinished offsets
// and a run of finished offsets; both runs are at least one offset long, and
// everything after the last finished run is unfinished. Every string has
// exactly one encoding; Decode rejects anything else.
//
// Example: committed 100, offsets 100 and 103 in flight, 101, 102 and
// 104..109 finished: "ot1:D4" (100 = 3·32+4) then (1,2) → "01" and (1,6) →
// "05", giving "ot1:D40105".
//
// # Size bound
//
// Kafka rejects a commit whose metadata exceeds offset.metadata.max.bytes
// (default 4096, [DefaultMaxMetadataLen]), and a rejected commit would stall
// the partition. The encoding costs at most one character per offset of the
// window between Committable and the highest finished offset (the worst case
// is every other offset finished), plus a header: see [EncodedLenBound] and
// its inverse [MaxWindow]. A caller that keeps Next() − Committable() at or
// below MaxWindow(limit) (and did so before a restart) always gets complete
// metadata when the offsets have no gaps; a gap is a single cheap run but
// may stretch the window. In addition the
// tracker never produces more than its limit (option [WithMaxMetadataLen]):
// if the finished offsets do not fit, the runs at the high end are left out
// ([Tracker.AppendMetadata] reports this). That only costs possible
// redelivery of those offsets after a crash, so cproxy does not need to
// restrict its lag for correctness; it should count truncations.
package offset
