package remoting

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxFrame bounds a frame (the 4-byte length prefix excluded) when no
// other limit is given: 16 MiB, as RocketMQ's default
// com.rocketmq.remoting.frameMaxLength.
const DefaultMaxFrame = 16 << 20

// maxHeader bounds the JSON header (RocketMQ uses a 24-bit length field).
const maxHeader = 1<<24 - 1

// Codec identifiers (the high byte of the second frame word).
const (
	CodecJSON     byte = 0
	CodecRocketMQ byte = 1 // RocketMQ's binary header codec: not supported here
)

// ErrFrame is wrapped by every decoding error: the bytes are not a valid
// frame. A server closes the connection that sent one.
var ErrFrame = errors.New("remoting: bad frame")

// Command is one remoting request or response.
//
// The JSON header carries every field except Body. Language is "GO" for
// commands this package creates unless set; ExtFields values are strings on
// the wire (JSON cannot carry bytes that are not valid UTF-8: they come out
// as U+FFFD).
type Command struct {
	Code      int16             `json:"code"`
	Language  string            `json:"language"`
	Version   int16             `json:"version"`
	Opaque    int32             `json:"opaque"`
	Flag      int32             `json:"flag"`
	Remark    string            `json:"remark"`
	ExtFields map[string]string `json:"extFields"`
	Body      []byte            `json:"-"`
}

// Flag bits of Command.Flag.
const (
	FlagResponse int32 = 0x1 // set on responses
	FlagOneway   int32 = 0x2 // set by Java clients on oneway requests; the Go client never sets it
)

// Version is the protocol version this package puts in requests (the one
// rocketmq-client-go v2.1.2 sends).
const Version int16 = 317

// NewRequest returns a request with code and ext fields (the map is used as
// is; nil becomes an empty map). The opaque is assigned by Client.Invoke.
func NewRequest(code int16, ext map[string]string, body []byte) *Command {
	if ext == nil {
		ext = map[string]string{}
	}
	return &Command{Code: code, Language: "GO", Version: Version, ExtFields: ext, Body: body}
}

// NewResponse returns a response to req with code and remark: same opaque,
// the response flag set, empty ext fields.
func NewResponse(req *Command, code int16, remark string) *Command {
	return &Command{
		Code: code, Language: "JAVA", Version: Version, Opaque: req.Opaque,
		Flag: FlagResponse, Remark: remark, ExtFields: map[string]string{},
	}
}

// IsResponse reports whether the response bit of Flag is set.
func (c *Command) IsResponse() bool { return c.Flag&FlagResponse != 0 }

// IsOneway reports whether the oneway bit is set (Java clients only).
func (c *Command) IsOneway() bool { return c.Flag&FlagOneway != 0 }

// Ext returns ExtFields[key] ("" when absent or when ExtFields is nil).
func (c *Command) Ext(key string) string { return c.ExtFields[key] }

// String describes the command for logs (no body).
func (c *Command) String() string {
	kind := "request"
	if c.IsResponse() {
		kind = "response"
	}
	return fmt.Sprintf("%s code=%d opaque=%d remark=%q ext=%v body=%dB", kind, c.Code, c.Opaque, c.Remark, c.ExtFields, len(c.Body))
}

// Encode returns the complete frame: total length, codec and header
// length, JSON header, body.
func (c *Command) Encode() ([]byte, error) {
	hdr := *c
	if hdr.ExtFields == nil {
		hdr.ExtFields = map[string]string{}
	}
	if hdr.Language == "" {
		hdr.Language = "GO"
	}
	h, err := json.Marshal(&hdr)
	if err != nil {
		return nil, fmt.Errorf("remoting: encode header: %w", err)
	}
	if len(h) > maxHeader {
		return nil, fmt.Errorf("remoting: header of %d bytes exceeds %d", len(h), maxHeader)
	}
	total := 4 + len(h) + len(c.Body)
	if total > 1<<31-1-4 {
		return nil, fmt.Errorf("remoting: frame of %d bytes is too large", total)
	}
	buf := make([]byte, 8, 4+total)
	binary.BigEndian.PutUint32(buf[0:], uint32(total))
	binary.BigEndian.PutUint32(buf[4:], uint32(CodecJSON)<<24|uint32(len(h)))
	buf = append(buf, h...)
	buf = append(buf, c.Body...)
	return buf, nil
}

// Decode parses one complete frame (including the 4-byte total length).
// The returned Body aliases b. Any inconsistency — short input, a length
// that does not match len(b), a header longer than the frame, a codec other
// than JSON, a header that is not a JSON object of the expected types —
// yields an error wrapping ErrFrame.
func Decode(b []byte) (*Command, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("%w: %d bytes, need at least 8", ErrFrame, len(b))
	}
	total := int64(binary.BigEndian.Uint32(b[0:4]))
	if total != int64(len(b)-4) {
		return nil, fmt.Errorf("%w: length field %d, frame has %d bytes", ErrFrame, total, len(b)-4)
	}
	return decodeBody(b[4:])
}

// decodeBody parses a frame without its total-length prefix.
func decodeBody(f []byte) (*Command, error) {
	if len(f) < 4 {
		return nil, fmt.Errorf("%w: frame of %d bytes, need at least 4", ErrFrame, len(f))
	}
	word := binary.BigEndian.Uint32(f[0:4])
	codec := byte(word >> 24)
	hlen := int(word & maxHeader)
	if codec != CodecJSON {
		return nil, fmt.Errorf("%w: codec %d not supported (only JSON)", ErrFrame, codec)
	}
	if hlen > len(f)-4 {
		return nil, fmt.Errorf("%w: header length %d exceeds frame (%d bytes)", ErrFrame, hlen, len(f)-4)
	}
	h := f[4 : 4+hlen]
	if len(bytes.TrimLeft(h, " \t\r\n")) == 0 || bytes.TrimLeft(h, " \t\r\n")[0] != '{' {
		return nil, fmt.Errorf("%w: header is not a JSON object", ErrFrame)
	}
	c := &Command{}
	if err := json.Unmarshal(h, c); err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrFrame, err)
	}
	if c.ExtFields == nil {
		c.ExtFields = map[string]string{}
	}
	if body := f[4+hlen:]; len(body) > 0 {
		c.Body = body
	}
	return c, nil
}

// ReadCommand reads one frame from r. A frame longer than maxFrame (bytes
// after the length prefix; <= 0 means DefaultMaxFrame) or shorter than 4
// bytes is refused with an ErrFrame error before its bytes are read.
// io.EOF is returned as is when r ends cleanly before a frame;
// io.ErrUnexpectedEOF when it ends inside one.
func ReadCommand(r io.Reader, maxFrame int) (*Command, error) {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	var lb [4]byte
	if _, err := io.ReadFull(r, lb[:]); err != nil {
		return nil, err
	}
	n := int64(binary.BigEndian.Uint32(lb[:]))
	if n < 4 || n > int64(maxFrame) {
		return nil, fmt.Errorf("%w: frame length %d outside [4, %d]", ErrFrame, n, maxFrame)
	}
	f := make([]byte, n)
	if _, err := io.ReadFull(r, f); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return decodeBody(f)
}

// CodeError is a response whose code the caller did not expect.
type CodeError struct {
	Code   int16
	Remark string
}

func (e *CodeError) Error() string {
	return fmt.Sprintf("remoting: response code %d: %s", e.Code, e.Remark)
}

// CheckCode returns nil when resp.Code is one of ok (Success when ok is
// empty), otherwise a *CodeError.
func CheckCode(resp *Command, ok ...int16) error {
	if len(ok) == 0 {
		ok = []int16{Success}
	}
	for _, c := range ok {
		if resp.Code == c {
			return nil
		}
	}
	return &CodeError{Code: resp.Code, Remark: resp.Remark}
}
