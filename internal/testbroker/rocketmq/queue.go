package rocketmq

import (
	"encoding/binary"
	"os"

	rm "github.com/ddmq-go/carrera/internal/rocketmq/remoting"
)

// Queue storage. A queue keeps its messages as their encoded stored
// layout (the PULL layout) back to back in a few large byte segments, and
// a 16-byte index entry per message. Segments hold no pointers, so the
// garbage collector does not scan them, and a PULL answer refers to the
// segment bytes instead of copying them (segment bytes are never
// rewritten; a dropped segment stays alive while a queued answer uses it).
// Everything else a message needs — tags, store time, commit-log offset —
// is read from its stored bytes when needed.
const (
	segFirst = 4 << 10 // size of a queue's first segment
	segMax   = 1 << 20 // segments double up to this size (a larger message gets one of its own)
)

type segment struct {
	buf   []byte // stored messages back to back; cap(buf) is the segment's size
	first int64  // queue offset of its first message
	seq   uint64 // broker-wide creation order: retention drops the oldest first
}

// slot indexes one message.
type slot struct {
	seg     uint32 // segment number: q.segs[seg-q.segBase]
	pos     uint32 // start in the segment
	size    uint32 // stored size
	tagHash uint32 // tagHash of its TAGS property ("" when none)
}

type queue struct {
	topic   string
	id      int
	segs    []segment
	segBase uint32 // segment number of segs[0]
	index   []slot // index[i] is the message at offset minOff+i
	minOff  int64  // offset of the first message kept (retention advances it)
	bytes   int64  // sum of the segments' sizes
	waiters []*heldPull
	wake    bool     // appended to since its held pulls were last checked
	file    *os.File // nil in memory mode
}

func (q *queue) maxOffset() int64 { return q.minOff + int64(len(q.index)) }

// data returns the stored bytes of the message at off (minOff ≤ off <
// maxOffset). The slice's capacity ends with the message.
func (q *queue) data(off int64) []byte { return q.run(q.index[off-q.minOff]) }

// run returns the segment bytes that s describes (a message or, with a
// larger size, consecutive messages of one segment).
func (q *queue) run(s slot) []byte {
	end := s.pos + s.size
	return q.segs[s.seg-q.segBase].buf[s.pos:end:end]
}

// reserve returns the segment the next message of n bytes goes to, adding
// one when the last has no room, and the bytes added (0 or the new
// segment's size).
func (q *queue) reserve(n int, seq *uint64) (*segment, int64) {
	if k := len(q.segs); k > 0 && cap(q.segs[k-1].buf)-len(q.segs[k-1].buf) >= n {
		return &q.segs[k-1], 0
	}
	size := segFirst
	if k := len(q.segs); k > 0 {
		size = min(2*cap(q.segs[k-1].buf), segMax)
	}
	size = max(size, n)
	*seq++
	q.segs = append(q.segs, segment{buf: make([]byte, 0, size), first: q.maxOffset(), seq: *seq})
	q.bytes += int64(size)
	return &q.segs[len(q.segs)-1], int64(size)
}

// commit indexes the message just appended to the last segment at
// [start, len(buf)).
func (q *queue) commit(start int, tagHash uint32) {
	seg := &q.segs[len(q.segs)-1]
	q.index = append(q.index, slot{
		seg:     q.segBase + uint32(len(q.segs)-1),
		pos:     uint32(start),
		size:    uint32(len(seg.buf) - start),
		tagHash: tagHash,
	})
}

// dropHead removes the oldest segment and its messages (never the last
// segment) and returns its size.
func (q *queue) dropHead() int64 {
	if len(q.segs) < 2 {
		return 0
	}
	n := q.segs[1].first - q.segs[0].first
	size := int64(cap(q.segs[0].buf))
	q.segs[0] = segment{}
	q.segs = q.segs[1:]
	q.segBase++
	clear(q.index[:n])
	q.index = q.index[n:]
	q.minOff += n
	q.bytes -= size
	return size
}

// search returns the first offset in [minOff, maxOffset) whose message
// satisfies ok (which must be false then true along the queue), or
// maxOffset.
func (q *queue) search(ok func(data []byte) bool) int64 {
	lo, hi := q.minOff, q.maxOffset()
	for lo < hi {
		mid := lo + (hi-lo)/2
		if ok(q.data(mid)) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// tagHash is FNV-1a (32 bits) of a tag; equal hashes are confirmed
// against the stored properties.
func tagHash[S ~string | ~[]byte](s S) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

// propValue returns the value of key in a raw property string with
// DecodeProperties' rules: items without exactly one \x01 are skipped, a
// later key wins. It does not allocate.
func propValue[S ~string | ~[]byte](props S, key string) (S, bool) {
	var val S
	found := false
	for i := 0; i < len(props); {
		j := i
		for j < len(props) && props[j] != rm.PropertySeparator {
			j++
		}
		item := props[i:j]
		i = j + 1
		k := -1
		for n := 0; n < len(item); n++ {
			if item[n] == rm.NameValueSeparator {
				if k >= 0 {
					k = -2 // a second separator: skipped
					break
				}
				k = n
			}
		}
		if k >= 0 && string(item[:k]) == key {
			val, found = item[k+1:], true
		}
	}
	return val, found
}

// Field access to a stored message (the layout remoting encodes; the
// broker wrote or validated every stored message it reads here).
var be = binary.BigEndian

func hostSize(sysFlag uint32, v6 int32) int {
	if int32(sysFlag)&v6 != 0 {
		return 20
	}
	return 8
}

// commitLogOffsetOf reads the commit-log offset of a stored message.
func commitLogOffsetOf(data []byte) int64 { return int64(be.Uint64(data[28:36])) }

// storeTimestampOf reads the store timestamp of a stored message.
func storeTimestampOf(data []byte) int64 {
	p := 48 + hostSize(be.Uint32(data[36:40]), rm.FlagBornHostV6)
	return int64(be.Uint64(data[p : p+8]))
}

// propertiesOf returns the raw properties of a stored message (aliasing
// data).
func propertiesOf(data []byte) []byte {
	sys := be.Uint32(data[36:40])
	p := 48 + hostSize(sys, rm.FlagBornHostV6) + 8 + hostSize(sys, rm.FlagStoreHostV6) + 4 + 8
	p += 4 + int(be.Uint32(data[p:p+4])) // body
	if int32(be.Uint32(data[4:8])) == rm.MessageMagicCodeV2 {
		p += 2 + int(be.Uint16(data[p:p+2]))
	} else {
		p += 1 + int(data[p])
	}
	n := int(be.Uint16(data[p : p+2]))
	return data[p+2 : p+2+n]
}
