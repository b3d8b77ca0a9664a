// Package bodyext encodes and decodes BodyExt, the JSON body of a delay
// inner message (wire-contract.md §7): written by pproxy's sendDelaySync,
// read by the delay service. It is pure (stdlib only) so both sides share it.
//
// Binary bodies (DDMQ defect #6 is not reproduced): a body that is valid
// UTF-8 travels as the string "body", exactly as DDMQ writes it; any other
// body travels as standard base64 under "bodyBase64" (and "body" is
// omitted). Decode prefers "bodyBase64" when present, so the delivered bytes
// are the original bytes in both cases.
package bodyext

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Actions of a delay message.
const (
	ActionAdd    = 1
	ActionCancel = 2
)

// BodyExt is a decoded inner-message body.
type BodyExt struct {
	// Topic is the user (delay) topic to deliver to.
	Topic string
	// UniqDelayMsgID is the message id (ADD: generated; CANCEL: as given).
	UniqDelayMsgID string
	// Action is ActionAdd or ActionCancel (other values are returned as
	// read; the caller decides).
	Action int32
	// Body is the user body, byte-exact.
	Body []byte
	// Tags are the request's tags ("" when absent).
	Tags string
	// Properties are the request's properties (nil when absent).
	Properties map[string]string
}

// wire is the JSON shape. Keys are in the order DDMQ writes them; absent
// values are omitted, never null.
type wire struct {
	Action         int32             `json:"action"`
	Body           *string           `json:"body,omitempty"`
	BodyBase64     string            `json:"bodyBase64,omitempty"`
	Properties     map[string]string `json:"properties,omitempty"`
	Tags           string            `json:"tags,omitempty"`
	Topic          string            `json:"topic"`
	UniqDelayMsgID string            `json:"uniqDelayMsgId"`
}

// Encode builds the inner body for a delay request.
func Encode(topic, id string, action int32, body []byte, tags string, props map[string]string) []byte {
	w := wire{Action: action, Properties: props, Tags: tags, Topic: topic, UniqDelayMsgID: id}
	if utf8.Valid(body) {
		s := string(body)
		w.Body = &s
	} else {
		w.BodyBase64 = base64.StdEncoding.EncodeToString(body)
	}
	// Like DDMQ's Jackson writer, no HTML escaping of <, > and &.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(w) // cannot fail: numbers, strings and a string map only
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})
}

// Errors of Decode.
var (
	ErrNotJSON        = errors.New("bodyext: not a JSON object")
	ErrMissingTopic   = errors.New("bodyext: missing topic")
	ErrMissingID      = errors.New("bodyext: missing uniqDelayMsgId")
	ErrBadBodyBase64  = errors.New("bodyext: bodyBase64 is not standard base64")
	ErrMissingAction  = errors.New("bodyext: missing action")
	errActionNotInt32 = errors.New("bodyext: action is not a 32-bit integer")
)

// decodeWire is the decoding shape: pointers tell absent from zero.
type decodeWire struct {
	Action         *json.Number      `json:"action"`
	Body           *string           `json:"body"`
	BodyBase64     *string           `json:"bodyBase64"`
	Properties     map[string]string `json:"properties"`
	Tags           *string           `json:"tags"`
	Topic          *string           `json:"topic"`
	UniqDelayMsgID *string           `json:"uniqDelayMsgId"`
}

// Decode parses an inner body. Unknown keys are ignored; "body" may be
// absent (an empty body); a present "bodyBase64" wins over "body". A body
// without topic, id or action, or with a malformed value, is an error: the
// delay service acknowledges and skips such messages.
func Decode(data []byte) (*BodyExt, error) {
	var w decodeWire
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotJSON, err)
	}
	if w.Topic == nil || *w.Topic == "" {
		return nil, ErrMissingTopic
	}
	if w.UniqDelayMsgID == nil || *w.UniqDelayMsgID == "" {
		return nil, ErrMissingID
	}
	if w.Action == nil {
		return nil, ErrMissingAction
	}
	action, err := w.Action.Int64()
	if err != nil || action != int64(int32(action)) {
		return nil, errActionNotInt32
	}
	ext := &BodyExt{Topic: *w.Topic, UniqDelayMsgID: *w.UniqDelayMsgID, Action: int32(action), Properties: w.Properties}
	if w.Tags != nil {
		ext.Tags = *w.Tags
	}
	switch {
	case w.BodyBase64 != nil:
		b, err := base64.StdEncoding.DecodeString(*w.BodyBase64)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadBodyBase64, err)
		}
		ext.Body = b
	case w.Body != nil:
		ext.Body = []byte(*w.Body)
	default:
		ext.Body = []byte{}
	}
	return ext, nil
}
