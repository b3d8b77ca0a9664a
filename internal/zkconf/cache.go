package zkconf

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrNoCache is returned (wrapped) when a node has no cached copy.
var ErrNoCache = errors.New("zkconf: no cached copy")

// diskCache is the last-known-good mirror of the nodes read from ZooKeeper
// (zookeeper-layout.md §9): <dir>/<zkPath>/<dataVersion> holds the raw node
// data, zkPath being the path inside the chroot. Only the current version
// is kept. Writes are atomic (temporary file + rename), so a reader — maybe
// another process sharing the directory — never sees a partial file.
type diskCache struct {
	dir string
}

// nodeDir is the directory of one node; path is validated (validPath).
func (c *diskCache) nodeDir(path string) string {
	return filepath.Join(c.dir, filepath.FromSlash(strings.TrimPrefix(path, "/")))
}

// store writes version of path and then deletes the node's other versions.
// Writing is skipped when the same version with the same content is there.
func (c *diskCache) store(path string, version int32, data []byte) error {
	dir := c.nodeDir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("zkconf cache: %w", err)
	}
	name := strconv.FormatInt(int64(version), 10)
	target := filepath.Join(dir, name)
	if old, err := os.ReadFile(target); err != nil || !bytes.Equal(old, data) {
		if err := writeAtomic(dir, target, data); err != nil {
			return fmt.Errorf("zkconf cache: %w", err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("zkconf cache: %w", err)
	}
	for _, e := range entries {
		if v, ok := parseVersion(e); ok && v != int64(version) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("zkconf cache: %w", err)
			}
		}
	}
	return nil
}

// newest loads the highest cached version of path.
func (c *diskCache) newest(path string) (Event, error) {
	dir := c.nodeDir(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Event{}, fmt.Errorf("%w of %s", ErrNoCache, path)
		}
		return Event{}, fmt.Errorf("zkconf cache: %w", err)
	}
	best := int64(-1)
	for _, e := range entries {
		if v, ok := parseVersion(e); ok && v > best {
			best = v
		}
	}
	if best < 0 {
		return Event{}, fmt.Errorf("%w of %s", ErrNoCache, path)
	}
	data, err := os.ReadFile(filepath.Join(dir, strconv.FormatInt(best, 10)))
	if err != nil {
		return Event{}, fmt.Errorf("zkconf cache: %w", err)
	}
	return Event{Path: path, Exists: true, Data: data, Version: int32(best), FromCache: true}, nil
}

// parseVersion accepts regular files named by a non-negative int32.
func parseVersion(e fs.DirEntry) (int64, bool) {
	if !e.Type().IsRegular() {
		return 0, false
	}
	v, err := strconv.ParseInt(e.Name(), 10, 64)
	if err != nil || v < 0 || v > math.MaxInt32 || strconv.FormatInt(v, 10) != e.Name() {
		return 0, false
	}
	return v, true
}

// writeAtomic writes data to a temporary file in dir, syncs it and renames
// it to target.
func writeAtomic(dir, target string, data []byte) error {
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(target)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, target)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}
