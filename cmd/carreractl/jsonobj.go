package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// object is a JSON object that keeps its members' order and raw values, so
// that a read-modify-write of a console-written node changes only what it
// means to change: unknown keys, number spellings ("maxTps":500.0) and key
// order survive. Output is compact, as the console writes it.
type object struct {
	members []member
	// exactKeys: the object is a map whose keys are data (proxy cluster or
	// broker cluster names), matched exactly; otherwise keys are field names,
	// matched like the parsers do.
	exactKeys bool
}

type member struct {
	key string
	val json.RawMessage
}

// parseObject parses data, which must be exactly one JSON object.
func parseObject(data []byte) (*object, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("invalid JSON: not an object")
	}
	o := &object{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("invalid JSON: %w", err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("invalid JSON: object key %v is not a string", tok)
		}
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, fmt.Errorf("invalid JSON at key %q: %w", key, err)
		}
		o.members = append(o.members, member{key: key, val: val})
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("invalid JSON: data after the object")
	}
	return o, nil
}

// index finds key: an exact match first, else a case-insensitive one (the
// proxies' parsers match keys case-insensitively, zookeeper-layout.md §3).
func (o *object) index(key string) int {
	for i, m := range o.members {
		if m.key == key {
			return i
		}
	}
	if o.exactKeys {
		return -1
	}
	for i, m := range o.members {
		if strings.EqualFold(m.key, key) {
			return i
		}
	}
	return -1
}

// raw returns key's value; ok is false when the key is absent or null.
func (o *object) raw(key string) (json.RawMessage, bool) {
	i := o.index(key)
	if i < 0 || isNull(o.members[i].val) {
		return nil, false
	}
	return o.members[i].val, true
}

// decode unmarshals key's value into v; an absent or null key leaves v as is.
func (o *object) decode(key string, v any) error {
	raw, ok := o.raw(key)
	if !ok {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("key %q: %w", key, err)
	}
	return nil
}

// object returns key's value as an object; an absent or null key gives an
// empty object.
func (o *object) object(key string) (*object, error) {
	raw, ok := o.raw(key)
	if !ok {
		return &object{}, nil
	}
	sub, err := parseObject(raw)
	if err != nil {
		return nil, fmt.Errorf("key %q: %w", key, err)
	}
	return sub, nil
}

// set replaces key's value in place (keeping the existing key spelling and
// position) or appends the key.
func (o *object) set(key string, v any) error {
	raw, err := encodeJSON(v)
	if err != nil {
		return fmt.Errorf("key %q: %w", key, err)
	}
	if i := o.index(key); i >= 0 {
		o.members[i].val = raw
		return nil
	}
	o.members = append(o.members, member{key: key, val: raw})
	return nil
}

// delete removes key if present.
func (o *object) delete(key string) {
	if i := o.index(key); i >= 0 {
		o.members = append(o.members[:i], o.members[i+1:]...)
	}
}

// keys returns the member keys in order.
func (o *object) keys() []string {
	out := make([]string, len(o.members))
	for i, m := range o.members {
		out[i] = m.key
	}
	return out
}

// MarshalJSON writes the members in order, compactly.
func (o *object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o.members {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := encodeJSON(m.key)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		if err := json.Compact(&b, m.val); err != nil {
			return nil, fmt.Errorf("key %q: %w", m.key, err)
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func isNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

// encodeJSON is json.Marshal without HTML escaping, so that strings such as
// URLs with '&' keep their bytes when a node is rewritten.
func encodeJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
