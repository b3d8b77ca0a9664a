// Package delayid parses and formats DDMQ's uniqDelayMsgId
// (wire-contract.md §6.5) and implements the loop arithmetic of the delay
// service (behaviour.md §3.5). It is pure: no clock, no I/O.
//
// An id is eight fields joined by "-":
//
//	<timestamp>-<type>-<expire>-<times>-<timed>-<interval>-<innerTopicSeq>-<uuid>
//
// The timestamp is always ten digits, so the byte order of ids is the time
// order of their occurrences, and the id of a tombstone (type 0) sorts before
// the data ids (types 2–4) of the same second.
package delayid

import (
	"errors"
	"strconv"
	"strings"
)

// Type is the delay message type (wire-contract.md §6.1).
type Type int

// Delay message types. Tombstone marks a cancellation inside the delay store;
// RealTime is never accepted from clients.
const (
	Tombstone    Type = 0
	RealTime     Type = 1
	Delay        Type = 2
	Loop         Type = 3
	LoopExponent Type = 4
)

// Limits of the arithmetic.
const (
	// MaxTimestamp is the largest ten-digit epoch second. An occurrence
	// after it cannot be written as an id (and is past every expire).
	MaxTimestamp = 9_999_999_999
	// MinTimestamp is the smallest ten-digit epoch second.
	MinTimestamp = 1_000_000_000
	// MaxExponentStep caps one step of a LOOP_EXPONENT_DELAY (one day).
	MaxExponentStep = 86400
)

// ErrMalformed is returned by Parse for a string that is not an id.
var ErrMalformed = errors.New("delayid: malformed uniqDelayMsgId")

// ID is a parsed uniqDelayMsgId: one occurrence of a delay message.
type ID struct {
	Timestamp int64 // fire time of this occurrence, epoch seconds
	Type      Type
	Expire    int64 // last permitted fire time (loops)
	Times     int64 // total number of deliveries (loops; 0 for DELAY)
	Timed     int64 // occurrences already fired before this one
	Interval  int64 // LOOP: seconds; LOOP_EXPONENT: the base
	Seq       int64 // inner-topic sequence
	UUID      string
}

// Parse parses s. The timestamp must be exactly ten digits, the type one
// digit, the other numeric fields decimal digits that fit an int64, and the
// UUID (everything after the seventh "-") 36 characters of [0-9a-z-].
// Parse(s).String() == s for every id the pproxy generates; ids with
// leading zeros in the numeric fields come back canonical (without them).
func Parse(s string) (ID, error) {
	parts := strings.SplitN(s, "-", 8)
	if len(parts) != 8 || len(parts[0]) != 10 || len(parts[1]) != 1 || !validUUID(parts[7]) {
		return ID{}, ErrMalformed
	}
	var nums [7]int64
	for i := range 7 {
		v, ok := digits(parts[i])
		if !ok {
			return ID{}, ErrMalformed
		}
		nums[i] = v
	}
	return ID{Timestamp: nums[0], Type: Type(nums[1]), Expire: nums[2], Times: nums[3],
		Timed: nums[4], Interval: nums[5], Seq: nums[6], UUID: parts[7]}, nil
}

// digits parses a non-empty run of ASCII digits into an int64.
func digits(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var v int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if v > (1<<63-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'z') && c != '-' {
			return false
		}
	}
	return true
}

// String formats the id. The timestamp is written with ten digits (zero
// padded), so keys stay time-ordered.
func (id ID) String() string {
	b := make([]byte, 0, 96)
	ts := strconv.AppendInt(nil, id.Timestamp, 10)
	for range 10 - len(ts) {
		b = append(b, '0')
	}
	b = append(b, ts...)
	b = append(b, '-')
	b = strconv.AppendInt(b, int64(id.Type), 10)
	for _, v := range [...]int64{id.Expire, id.Times, id.Timed, id.Interval, id.Seq} {
		b = append(b, '-')
		b = strconv.AppendInt(b, v, 10)
	}
	b = append(b, '-')
	b = append(b, id.UUID...)
	return string(b)
}

// IsLoop reports whether the id is a LOOP_DELAY or LOOP_EXPONENT_DELAY.
func (id ID) IsLoop() bool { return id.Type == Loop || id.Type == LoopExponent }

// Valid reports whether this occurrence may fire: it is representable
// (ten-digit timestamp) and, for loops, timed < times and
// timestamp <= expire (behaviour.md §3.5). A DELAY occurrence is always
// valid when representable.
func (id ID) Valid() bool {
	if id.Timestamp < MinTimestamp || id.Timestamp > MaxTimestamp {
		return false
	}
	if id.IsLoop() {
		return id.Timed < id.Times && id.Timestamp <= id.Expire
	}
	return true
}

// Next returns the loop's next occurrence and whether it is valid. For a
// non-loop id, or a loop whose step is not positive (a malformed interval
// that would never advance), it returns false.
//
//	LOOP_DELAY:          timestamp += interval; timed += 1
//	LOOP_EXPONENT_DELAY: timed += 1; step = interval^timed, capped at 86400
//	                     (also on overflow); timestamp += step
func (id ID) Next() (ID, bool) {
	var step int64
	switch id.Type {
	case Loop:
		step = id.Interval
	case LoopExponent:
		step = ExponentStep(id.Interval, id.Timed+1)
	default:
		return id, false
	}
	if step <= 0 || id.Timed == 1<<63-1 {
		return id, false
	}
	next := id
	next.Timed++
	if step > MaxTimestamp-id.Timestamp {
		// Past every ten-digit second, hence past every expire.
		next.Timestamp = MaxTimestamp + 1
		return next, false
	}
	next.Timestamp += step
	return next, next.Valid()
}

// FirstAfter returns the first occurrence, from id on, whose timestamp is
// after sec, the number of occurrences passed over to reach it, and whether
// it is valid. A DELAY has no later occurrence: it is returned unchanged
// when it is after sec, else as invalid. A LOOP_DELAY jumps there
// arithmetically; a LOOP_EXPONENT_DELAY walks (its steps reach a day after
// at most 17 occurrences, so the walk is short).
func (id ID) FirstAfter(sec int64) (ID, int64, bool) {
	if id.Timestamp > sec {
		return id, 0, id.Valid()
	}
	switch id.Type {
	case Loop:
		if id.Interval <= 0 {
			return id, 0, false
		}
		k := (sec-id.Timestamp)/id.Interval + 1
		next := id
		if k > MaxTimestamp/id.Interval || id.Timed > 1<<63-1-k {
			next.Timestamp = MaxTimestamp + 1
			return next, k, false
		}
		next.Timestamp += k * id.Interval
		next.Timed += k
		return next, k, next.Valid()
	case LoopExponent:
		var n int64
		occ, ok := id, true
		for occ.Timestamp <= sec {
			if occ, ok = occ.Next(); !ok {
				return occ, n + 1, false
			}
			n++
		}
		return occ, n, ok
	}
	return id, 0, false
}

// ExponentStep returns base^exp capped at MaxExponentStep (the cap also
// applies when the power overflows). exp <= 0 gives 1; base <= 0 gives 0
// (base 1 gives 1): such steps never advance and Next rejects them.
func ExponentStep(base, exp int64) int64 {
	if exp <= 0 {
		return 1
	}
	if base <= 0 {
		return 0
	}
	if base == 1 {
		return 1
	}
	step := int64(1)
	for range exp {
		if step > MaxExponentStep/base {
			return MaxExponentStep
		}
		step *= base
	}
	return min(step, MaxExponentStep)
}

// AsTombstone returns the id with type 0: the store key of a cancellation
// of this occurrence, which sorts before the data keys of its second.
func (id ID) AsTombstone() ID {
	id.Type = Tombstone
	return id
}

// SecondPrefix is the key prefix of every id of second sec: "<sec>-".
func SecondPrefix(sec int64) string {
	return ID{Timestamp: sec}.String()[:10] + "-"
}
