// Package store is the delay service's persistent store: an embedded
// Pebble (LSM) database keyed by uniqDelayMsgId (behaviour.md §3.3).
//
// Because an id starts with its ten-digit fire second, byte order is time
// order and one bounded scan returns exactly one second's keys; a tombstone
// (type 0) sorts before the data keys of its second. Values are JSON:
// data {"topic","body","createTime","tags","properties"} with the body as
// bytes (base64 in JSON, so binary bodies stay byte-exact) and tombstones
// {"uniqDelayMsgId","topic"}. The seek position is kept in the same
// database under a key outside the id space, so advancing it is part of the
// same synchronous write as the second's loop re-insertions.
//
// Why Pebble: writes are sequential appends to a WAL and a memtable (fast
// ordered ingest with group-committed fsyncs), and memory is bounded by the
// memtable size and a fixed block cache, so the resident set does not grow
// with the number of pending messages (an mmap'ed B-tree such as bbolt maps
// the whole file). Range deletion makes retention one cheap write.
//
// A Store is safe for concurrent use.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/bloom"
	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/internal/chronos/delayid"
)

// Defaults of Options.
const (
	DefaultCacheBytes    = 16 << 20
	DefaultMemTableBytes = 16 << 20
)

// seekKey holds the seek position; 0xff sorts after every id (ids start
// with a digit), so no second scan or retention range ever touches it.
var seekKey = []byte("\xffseek")

// idSpaceEnd is the exclusive upper bound of every id key.
var idSpaceEnd = []byte{0xff}

// Options configures Open.
type Options struct {
	// Dir is the database directory (created if missing; locked while open).
	Dir string
	// CacheBytes is the block cache size (default 16 MiB).
	CacheBytes int64
	// MemTableBytes is the memtable size (default 16 MiB); up to a few
	// memtables may exist at once while one is flushed.
	MemTableBytes uint64
	// Logger receives Pebble's own log lines (at debug level); nil = none.
	Logger *zap.Logger
}

// Store is an open database.
type Store struct {
	db     *pebble.DB
	cache  interface{ Unref() }
	closed atomic.Bool
}

// Message is a stored occurrence of a delay message (a data value).
type Message struct {
	Topic      string            `json:"topic"`
	Body       []byte            `json:"body"`
	CreateTime int64             `json:"createTime"` // epoch milliseconds of ingestion
	Tags       string            `json:"tags,omitempty"`
	Properties map[string]string `json:"properties,omitempty"`
}

// Cancel is a tombstone value: the occurrence it cancels.
type Cancel struct {
	UniqDelayMsgID string `json:"uniqDelayMsgId"`
	Topic          string `json:"topic"`
}

// Open opens (or creates) the database in o.Dir.
func Open(o Options) (*Store, error) {
	if o.Dir == "" {
		return nil, errors.New("store: empty directory")
	}
	if o.CacheBytes <= 0 {
		o.CacheBytes = DefaultCacheBytes
	}
	if o.MemTableBytes == 0 {
		o.MemTableBytes = DefaultMemTableBytes
	}
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	cache := pebble.NewCache(o.CacheBytes)
	opts := &pebble.Options{
		Cache:        cache,
		MemTableSize: o.MemTableBytes,
		MaxOpenFiles: 1000,
		Logger:       pebbleLogger{log.Sugar()},
		Levels:       make([]pebble.LevelOptions, 7),
	}
	for i := range opts.Levels {
		// Bloom filters make the existence check of a fresh key cheap.
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	opts.Levels[6].Compression = pebble.SnappyCompression
	db, err := pebble.Open(o.Dir, opts)
	if err != nil {
		cache.Unref()
		return nil, fmt.Errorf("store: open %s: %w", o.Dir, err)
	}
	return &Store{db: db, cache: cache}, nil
}

// Close closes the database (idempotent). No other method may be called
// after it.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	err := s.db.Close()
	s.cache.Unref()
	return err
}

// Flush writes the memtable to disk (makes the next open faster; committed
// data is already durable).
func (s *Store) Flush() error { return s.db.Flush() }

// DiskBytes is the on-disk size of the database (tables, WAL, manifest).
func (s *Store) DiskBytes() uint64 { return s.db.Metrics().DiskSpaceUsage() }

// Batch collects writes that become visible and durable together.
// A Batch is not safe for concurrent use.
type Batch struct {
	b *pebble.Batch
}

// NewBatch returns an empty batch.
func (s *Store) NewBatch() *Batch { return &Batch{b: s.db.NewBatch()} }

// Empty reports whether the batch holds no write.
func (b *Batch) Empty() bool { return b.b.Empty() }

// Count is the number of writes in the batch.
func (b *Batch) Count() uint32 { return b.b.Count() }

// Close releases the batch (after Commit, or to discard it).
func (b *Batch) Close() { _ = b.b.Close() }

// PutMessage stores m as occurrence id (key id.String()).
func (b *Batch) PutMessage(id delayid.ID, m *Message) error {
	v, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("store: encode %s: %w", id, err)
	}
	return b.b.Set([]byte(id.String()), v, nil)
}

// PutCancel stores a tombstone that cancels occurrence target of topic:
// key = target with type 0.
func (b *Batch) PutCancel(target delayid.ID, topic string) error {
	v, err := json.Marshal(Cancel{UniqDelayMsgID: target.String(), Topic: topic})
	if err != nil {
		return fmt.Errorf("store: encode tombstone of %s: %w", target, err)
	}
	return b.b.Set([]byte(target.AsTombstone().String()), v, nil)
}

// SetSeek records the seek position (the next second to process).
func (b *Batch) SetSeek(sec int64) error {
	return b.b.Set(seekKey, strconv.AppendInt(nil, sec, 10), nil)
}

// Commit applies b; with sync it returns only after the write is on disk
// (concurrent synchronous commits share one fsync).
func (s *Store) Commit(b *Batch, sync bool) error {
	opts := pebble.NoSync
	if sync {
		opts = pebble.Sync
	}
	if err := b.b.Commit(opts); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

// Has reports whether key exists.
func (s *Store) Has(key string) (bool, error) {
	_, closer, err := s.db.Get([]byte(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: get: %w", err)
	}
	_ = closer.Close()
	return true, nil
}

// Seek returns the stored seek position; ok is false if none was stored.
func (s *Store) Seek() (sec int64, ok bool, err error) {
	v, closer, err := s.db.Get(seekKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("store: get seek: %w", err)
	}
	defer closer.Close()
	sec, err = strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("store: corrupt seek %q: %w", v, err)
	}
	return sec, true, nil
}

// Entry is one key of a second, as visited by ScanSecond.
type Entry struct {
	// Key is the stored key; ID its parse.
	Key string
	ID  delayid.ID
	// Message is set for a data key, Cancel for a tombstone. Err is set
	// (and both are nil) when the key or value cannot be decoded; such
	// entries are reported so the caller can log and skip them.
	Message *Message
	Cancel  *Cancel
	Err     error
}

// ScanSecond calls fn for every key of second sec in key order: tombstones
// first, then data keys. It stops at the first error fn returns.
func (s *Store) ScanSecond(sec int64, fn func(*Entry) error) error {
	lo := delayid.SecondPrefix(sec)
	hi := lo[:len(lo)-1] + "." // '.' follows '-'
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte(lo), UpperBound: []byte(hi)})
	if err != nil {
		return fmt.Errorf("store: iterator: %w", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		e := decodeEntry(it.Key(), it.Value())
		if err := fn(e); err != nil {
			_ = it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("store: scan %d: %w", sec, err)
	}
	return nil
}

func decodeEntry(k, v []byte) *Entry {
	e := &Entry{Key: string(k)}
	id, err := delayid.Parse(e.Key)
	if err != nil {
		e.Err = err
		return e
	}
	e.ID = id
	if id.Type == delayid.Tombstone {
		var c Cancel
		if err := json.Unmarshal(v, &c); err != nil {
			e.Err = fmt.Errorf("store: tombstone %s: %w", e.Key, err)
			return e
		}
		e.Cancel = &c
		return e
	}
	var m Message
	if err := json.Unmarshal(v, &m); err != nil {
		e.Err = fmt.Errorf("store: message %s: %w", e.Key, err)
		return e
	}
	e.Message = &m
	return e
}

// CountFrom counts the data keys (tombstones excluded) of seconds >= sec:
// the messages still pending when sec is the seek position.
func (s *Store) CountFrom(sec int64) (int64, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte(delayid.SecondPrefix(sec)), UpperBound: idSpaceEnd})
	if err != nil {
		return 0, fmt.Errorf("store: iterator: %w", err)
	}
	var n int64
	for ok := it.First(); ok; ok = it.Next() {
		if k := it.Key(); len(k) > 11 && k[11] != '0' {
			n++
		}
	}
	if err := it.Close(); err != nil {
		return 0, fmt.Errorf("store: count: %w", err)
	}
	return n, nil
}

// DeleteBefore deletes every key of the seconds before sec (retention) in
// one range deletion; the space is reclaimed by later compactions.
func (s *Store) DeleteBefore(sec int64) error {
	if err := s.db.DeleteRange([]byte("0"), []byte(delayid.SecondPrefix(sec)), pebble.Sync); err != nil {
		return fmt.Errorf("store: delete before %d: %w", sec, err)
	}
	return nil
}

// Compact compacts the whole id space (reclaims deleted ranges now; used by
// tests and operators, not by the service's hot path).
func (s *Store) Compact() error {
	return s.db.Compact([]byte("0"), idSpaceEnd, true)
}

// pebbleLogger adapts zap to Pebble's logger: its informational lines go
// to debug; Fatalf (an internal invariant violation) logs and exits.
type pebbleLogger struct{ s *zap.SugaredLogger }

func (l pebbleLogger) Infof(format string, args ...any)  { l.s.Debugf("pebble: "+format, args...) }
func (l pebbleLogger) Fatalf(format string, args ...any) { l.s.Fatalf("pebble: "+format, args...) }
