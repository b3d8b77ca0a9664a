package offset

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

const (
	// DefaultMaxMetadataLen is the default maximum length of the metadata:
	// Kafka's default offset.metadata.max.bytes.
	DefaultMaxMetadataLen = 4096
	// MinMetadataLen is the smallest limit [WithMaxMetadataLen] accepts; it
	// leaves room for the header and at least one pair of runs.
	MinMetadataLen = 64

	// prefix identifies the format and its version.
	prefix = "ot1:"
	// maxNumLen is the length of the longest number, math.MaxInt64.
	maxNumLen = 14
	// maxHeaderLen is the length of the longest header: prefix and base.
	maxHeaderLen = len(prefix) + maxNumLen
)

// Errors returned by [Decode]. In every case the caller should fall back to
// [New] with the committed offset (at-least-once delivery is unaffected;
// only messages finished before the restart may be delivered again).
var (
	// ErrMalformed: the metadata is not in a format this package wrote
	// (foreign, corrupt, unknown version, or longer than the limit).
	ErrMalformed = errors.New("offset: malformed tracker metadata")
	// ErrBaseMismatch: the metadata was written for a different committed
	// offset (for example, someone reset the group's offset but kept the
	// metadata), so its offsets cannot be trusted.
	ErrBaseMismatch = errors.New("offset: tracker metadata belongs to another committed offset")
	// ErrInvalidOffset: the committed offset is negative.
	ErrInvalidOffset = errors.New("offset: invalid committed offset")
)

// final digits: one base-32 digit ending a number.
const finalDigits = "0123456789abcdefghijklmnopqrstuv"

// EncodedLenBound returns an upper bound on the length of the metadata of a
// tracker whose finished offsets above Committable all lie within window
// offsets of it (that is, below Committable()+window), whatever the pattern
// of finished and unfinished offsets, including the worst case of every
// other offset finished. Without gaps in the offsets, keeping
// Next()−Committable() <= window keeps every finished offset in the window.
func EncodedLenBound(window int) int {
	if window < 2 {
		return 0 // base itself is unfinished: nothing finished to encode
	}
	// A run of k >= 1 offsets costs numLen(k-1) <= k characters, so the
	// runs cost at most one character per offset of the window.
	return maxHeaderLen + window
}

// MaxWindow returns the largest window for which [EncodedLenBound] is at
// most limit: the largest Next()−Committable() a caller may allow and still
// be sure the metadata is complete. MaxWindow(DefaultMaxMetadataLen) is
// 4078. It returns 1 for limits too small for any metadata.
func MaxWindow(limit int) int {
	return max(1, limit-maxHeaderLen)
}

// Metadata returns the finished offsets above Committable, encoded as
// described in the package documentation; "" if there are none. The result
// is at most the tracker's limit long; see [Tracker.AppendMetadata]. It
// costs O(started offsets in [Committable, Next)).
func (t *Tracker) Metadata() string {
	b, _ := t.AppendMetadata(make([]byte, 0, min(t.limit, 32+2*t.inFlight)))
	return string(b)
}

// AppendMetadata appends [Tracker.Metadata] to dst. complete is false if the
// finished offsets did not fit within the tracker's limit, in which case the
// highest runs of finished offsets were left out (they will be delivered
// again after a restart).
func (t *Tracker) AppendMetadata(dst []byte) (out []byte, complete bool) {
	start := len(dst)
	prev := t.base // end of the previous finished run
	complete = true
	t.finishedSpans(func(lo, hi int64) bool {
		mark := len(dst)
		if mark == start {
			dst = append(dst, prefix...)
			dst = appendNum(dst, uint64(t.base))
		}
		dst = appendNum(dst, uint64(lo-prev-1))
		dst = appendNum(dst, uint64(hi-lo-1))
		if len(dst)-start > t.limit {
			dst, complete = dst[:mark], false
			return false
		}
		prev = hi
		return true
	})
	return dst, complete
}

// appendNum appends v as v/32 in base 26 ('A'..'Z', no leading 'A') and
// v%32 as one base-32 digit.
func appendNum(dst []byte, v uint64) []byte {
	var buf [maxNumLen]byte
	i := len(buf) - 1
	buf[i] = finalDigits[v%32]
	for q := v / 32; q > 0; q /= 26 {
		i--
		buf[i] = 'A' + byte(q%26)
	}
	return append(dst, buf[i:]...)
}

// numLen returns the length of appendNum's encoding of v.
func numLen(v uint64) int {
	n := 1
	for q := v / 32; q > 0; q /= 26 {
		n++
	}
	return n
}

// parseNum reads one number from s at i and returns it and the index after
// it. It rejects leading zeros, foreign characters, a missing final digit and
// values above math.MaxInt64.
func parseNum(s string, i int) (v int64, next int, err error) {
	const maxQ = math.MaxInt64 >> 5 // v = q*32 + f <= MaxInt64
	start := i
	var q int64
	for ; i < len(s) && s[i] >= 'A' && s[i] <= 'Z'; i++ {
		d := int64(s[i] - 'A')
		if i == start && d == 0 {
			return 0, 0, fmt.Errorf("%w: leading zero digit at %d", ErrMalformed, i)
		}
		if q > (maxQ-d)/26 {
			return 0, 0, fmt.Errorf("%w: number at %d out of range", ErrMalformed, start)
		}
		q = q*26 + d
	}
	if i == len(s) {
		return 0, 0, fmt.Errorf("%w: truncated number at %d", ErrMalformed, start)
	}
	f := strings.IndexByte(finalDigits, s[i])
	if f < 0 {
		return 0, 0, fmt.Errorf("%w: unexpected character %q at %d", ErrMalformed, s[i], i)
	}
	return q*32 + int64(f), i + 1, nil
}

// Decode returns a tracker for a partition whose committed offset is
// committed and whose commit carried meta (written by [Tracker.Metadata]).
// The tracker reports Start == false for the offsets meta lists as finished.
// An empty meta is the same as [New]. On error the caller should log it and
// use New(committed); the errors wrap [ErrMalformed], [ErrBaseMismatch] or
// [ErrInvalidOffset]. Decode accepts exactly the strings Metadata produces
// (up to the limit set by [WithMaxMetadataLen]), so a decoded tracker
// re-encodes to meta.
func Decode(committed int64, meta string, opts ...Option) (*Tracker, error) {
	if committed < 0 {
		return nil, fmt.Errorf("%w: %d", ErrInvalidOffset, committed)
	}
	t := New(committed, opts...)
	if meta == "" {
		return t, nil
	}
	if len(meta) > t.limit {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMalformed, len(meta), t.limit)
	}
	if !strings.HasPrefix(meta, prefix) {
		return nil, fmt.Errorf("%w: unknown format or version", ErrMalformed)
	}
	base, i, err := parseNum(meta, len(prefix))
	if err != nil {
		return nil, err
	}
	if base != committed {
		return nil, fmt.Errorf("%w: metadata for %d, committed %d", ErrBaseMismatch, base, committed)
	}
	if i == len(meta) {
		return nil, fmt.Errorf("%w: no finished offsets", ErrMalformed)
	}
	// Each pair takes at least two characters.
	acked := make([]span, 0, (len(meta)-i)/2)
	prev := base
	for i < len(meta) {
		var h, d int64
		if h, i, err = parseNum(meta, i); err != nil {
			return nil, err
		}
		if d, i, err = parseNum(meta, i); err != nil {
			return nil, err
		}
		// lo = prev + h + 1, hi = lo + d + 1, and hi <= MaxInt64 (the
		// largest valid offset is MaxInt64-1).
		if h >= math.MaxInt64-prev || d >= math.MaxInt64-(prev+h+1) {
			return nil, fmt.Errorf("%w: offsets out of range", ErrMalformed)
		}
		lo := prev + h + 1
		prev = lo + d + 1
		acked = append(acked, span{lo, prev})
	}
	t.acked = acked
	return t, nil
}
