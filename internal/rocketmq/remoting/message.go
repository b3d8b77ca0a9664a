package remoting

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"net/netip"
	"slices"
	"strings"
)

// ErrMessage is wrapped by every message-decoding error.
var ErrMessage = errors.New("remoting: bad message encoding")

// Magic codes of stored messages: MessageMagicCode (RocketMQ's
// MESSAGE_MAGIC_CODE, 0xdaa320a7) has a one-byte topic length;
// MessageMagicCodeV2 (RocketMQ 5, used for long topics) a two-byte one.
const (
	MessageMagicCode   int32 = -626843481
	MessageMagicCodeV2 int32 = -626843477
)

// Limits of the stored-message layout.
const (
	MaxTopicLen      = 255    // the topic length is one byte (two with MessageMagicCodeV2)
	MaxPropertiesLen = 0x7fff // the properties length is an int16 (clients read it signed)
)

// StoredMessage is one message as a broker stores it and as PULL responses
// carry it (test-environment.md §3.4).
type StoredMessage struct {
	// MagicCode is written as is unless 0, which encodes MessageMagicCode.
	// MessageMagicCodeV2 selects a two-byte topic length.
	MagicCode int32
	// BodyCRC is written as is (see BodyCRC).
	BodyCRC         int32
	QueueID         int32
	Flag            int32
	QueueOffset     int64
	CommitLogOffset int64
	// SysFlag: the host bits (FlagBornHostV6, FlagStoreHostV6) are derived
	// from BornHost and StoreHost on encoding; other bits are kept.
	SysFlag                   int32
	BornTimestamp             int64 // milliseconds since the epoch
	BornHost                  netip.AddrPort
	StoreTimestamp            int64 // milliseconds since the epoch
	StoreHost                 netip.AddrPort
	ReconsumeTimes            int32
	PreparedTransactionOffset int64
	Body                      []byte // compressed when SysFlag has FlagCompressed
	Topic                     string
	// Properties is the raw "key\x01value\x02..." string, stored byte-exact.
	Properties string
}

// BodyCRC is RocketMQ's body checksum: CRC-32 (IEEE) with the sign bit
// cleared.
func BodyCRC(body []byte) int32 { return int32(crc32.ChecksumIEEE(body) & 0x7fffffff) }

func hostLen(a netip.AddrPort) int {
	if isV6(a) {
		return 16 + 4
	}
	return 4 + 4
}

func isV6(a netip.AddrPort) bool { return a.Addr().Is6() && !a.Addr().Is4In6() }

// EncodedLen is the storeSize of m.
func (m *StoredMessage) EncodedLen() int {
	return 4 + 4 + 4 + 4 + 4 + 8 + 8 + 4 + 8 + hostLen(m.BornHost) + 8 + hostLen(m.StoreHost) +
		4 + 8 + 4 + len(m.Body) + m.topicLenSize() + len(m.Topic) + 2 + len(m.Properties)
}

func (m *StoredMessage) topicLenSize() int {
	if m.MagicCode == MessageMagicCodeV2 {
		return 2
	}
	return 1
}

// AppendStoredMessage appends m in the stored layout to dst. It fails when
// the topic exceeds MaxTopicLen or the properties MaxPropertiesLen bytes.
func AppendStoredMessage(dst []byte, m *StoredMessage) ([]byte, error) {
	if len(m.Topic) > MaxTopicLen && (m.MagicCode != MessageMagicCodeV2 || len(m.Topic) > 0x7fff) {
		return dst, fmt.Errorf("remoting: topic of %d bytes exceeds %d", len(m.Topic), MaxTopicLen)
	}
	if len(m.Properties) > MaxPropertiesLen {
		return dst, fmt.Errorf("remoting: properties of %d bytes exceed %d", len(m.Properties), MaxPropertiesLen)
	}
	size := m.EncodedLen()
	if size > 1<<31-1 {
		return dst, fmt.Errorf("remoting: message of %d bytes is too large", size)
	}
	magic := m.MagicCode
	if magic == 0 {
		magic = MessageMagicCode
	}
	sys := m.SysFlag &^ (FlagBornHostV6 | FlagStoreHostV6)
	if isV6(m.BornHost) {
		sys |= FlagBornHostV6
	}
	if isV6(m.StoreHost) {
		sys |= FlagStoreHostV6
	}
	be := binary.BigEndian
	dst = slices.Grow(dst, size)
	dst = be.AppendUint32(dst, uint32(size))
	dst = be.AppendUint32(dst, uint32(magic))
	dst = be.AppendUint32(dst, uint32(m.BodyCRC))
	dst = be.AppendUint32(dst, uint32(m.QueueID))
	dst = be.AppendUint32(dst, uint32(m.Flag))
	dst = be.AppendUint64(dst, uint64(m.QueueOffset))
	dst = be.AppendUint64(dst, uint64(m.CommitLogOffset))
	dst = be.AppendUint32(dst, uint32(sys))
	dst = be.AppendUint64(dst, uint64(m.BornTimestamp))
	dst = appendHost(dst, m.BornHost)
	dst = be.AppendUint64(dst, uint64(m.StoreTimestamp))
	dst = appendHost(dst, m.StoreHost)
	dst = be.AppendUint32(dst, uint32(m.ReconsumeTimes))
	dst = be.AppendUint64(dst, uint64(m.PreparedTransactionOffset))
	dst = be.AppendUint32(dst, uint32(len(m.Body)))
	dst = append(dst, m.Body...)
	if m.topicLenSize() == 2 {
		dst = be.AppendUint16(dst, uint16(len(m.Topic)))
	} else {
		dst = append(dst, byte(len(m.Topic)))
	}
	dst = append(dst, m.Topic...)
	dst = be.AppendUint16(dst, uint16(len(m.Properties)))
	dst = append(dst, m.Properties...)
	return dst, nil
}

// EncodeStoredMessage returns m in the stored layout.
func EncodeStoredMessage(m *StoredMessage) ([]byte, error) {
	return AppendStoredMessage(nil, m)
}

func appendHost(dst []byte, a netip.AddrPort) []byte {
	if isV6(a) {
		ip := a.Addr().As16()
		dst = append(dst, ip[:]...)
	} else {
		var ip [4]byte // the zero Addr encodes as 0.0.0.0
		if a.Addr().IsValid() {
			ip = a.Addr().Unmap().As4()
		}
		dst = append(dst, ip[:]...)
	}
	return binary.BigEndian.AppendUint32(dst, uint32(a.Port()))
}

// reader is a bounds-checked big-endian cursor.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = fmt.Errorf("%w: need %d bytes, %d left", ErrMessage, n, len(r.b))
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() uint8 {
	if v := r.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if v := r.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (r *reader) i32() int32 {
	if v := r.take(4); v != nil {
		return int32(binary.BigEndian.Uint32(v))
	}
	return 0
}

func (r *reader) i64() int64 {
	if v := r.take(8); v != nil {
		return int64(binary.BigEndian.Uint64(v))
	}
	return 0
}

func (r *reader) host(v6 bool) netip.AddrPort {
	var a netip.Addr
	if v6 {
		if v := r.take(16); v != nil {
			a = netip.AddrFrom16([16]byte(v))
		}
	} else if v := r.take(4); v != nil {
		a = netip.AddrFrom4([4]byte(v))
	}
	port := r.i32()
	if r.err != nil {
		return netip.AddrPort{}
	}
	if port < 0 || port > 0xffff {
		r.err = fmt.Errorf("%w: port %d", ErrMessage, port)
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(a, uint16(port))
}

// DecodeStoredMessages parses a concatenation of stored messages (a PULL
// response body). Bodies alias data. Each message's storeSize must equal
// its parsed length; a truncated or inconsistent message yields an error
// wrapping ErrMessage and the messages decoded before it.
func DecodeStoredMessages(data []byte) ([]StoredMessage, error) {
	var out []StoredMessage
	for len(data) > 0 {
		m, n, err := decodeStored(data)
		if err != nil {
			return out, fmt.Errorf("message %d: %w", len(out), err)
		}
		out = append(out, m)
		data = data[n:]
	}
	return out, nil
}

func decodeStored(data []byte) (StoredMessage, int, error) {
	r := &reader{b: data}
	var m StoredMessage
	size := r.i32()
	if r.err != nil {
		return m, 0, r.err
	}
	if size < 4 || int64(size) > int64(len(data)) {
		return m, 0, fmt.Errorf("%w: storeSize %d with %d bytes left", ErrMessage, size, len(data))
	}
	r.b = data[4:size] // parse within the declared size only
	m.MagicCode = r.i32()
	m.BodyCRC = r.i32()
	m.QueueID = r.i32()
	m.Flag = r.i32()
	m.QueueOffset = r.i64()
	m.CommitLogOffset = r.i64()
	m.SysFlag = r.i32()
	m.BornTimestamp = r.i64()
	m.BornHost = r.host(m.SysFlag&FlagBornHostV6 != 0)
	m.StoreTimestamp = r.i64()
	m.StoreHost = r.host(m.SysFlag&FlagStoreHostV6 != 0)
	m.ReconsumeTimes = r.i32()
	m.PreparedTransactionOffset = r.i64()
	bodyLen := r.i32()
	if r.err == nil && bodyLen < 0 {
		return m, 0, fmt.Errorf("%w: body length %d", ErrMessage, bodyLen)
	}
	m.Body = r.take(int(bodyLen))
	if m.MagicCode == MessageMagicCodeV2 {
		m.Topic = string(r.take(int(r.u16())))
	} else {
		m.Topic = string(r.take(int(r.u8())))
	}
	propLen := r.u16()
	if r.err == nil && propLen > MaxPropertiesLen {
		return m, 0, fmt.Errorf("%w: properties length %d", ErrMessage, propLen)
	}
	m.Properties = string(r.take(int(propLen)))
	if r.err != nil {
		return m, 0, r.err
	}
	if len(r.b) != 0 {
		return m, 0, fmt.Errorf("%w: storeSize %d leaves %d unparsed bytes", ErrMessage, size, len(r.b))
	}
	return m, int(size), nil
}

// BatchMessage is one message inside a SEND_BATCH_MESSAGE body.
type BatchMessage struct {
	Flag       int32
	Body       []byte
	Properties string // raw "key\x01value\x02..." string
}

// EncodeBatch returns the SEND_BATCH_MESSAGE body for msgs: per message
// [int32 totalSize][int32 magic=0][int32 bodyCRC=0][int32 flag]
// [int32 bodyLen][body][int16 propLen][props], as the Go client writes it.
func EncodeBatch(msgs []BatchMessage) ([]byte, error) {
	var out []byte
	be := binary.BigEndian
	for i, m := range msgs {
		if len(m.Properties) > 0xffff {
			return nil, fmt.Errorf("remoting: batch message %d: properties of %d bytes exceed 65535", i, len(m.Properties))
		}
		size := 20 + len(m.Body) + 2 + len(m.Properties)
		if int64(size) > 1<<31-1 {
			return nil, fmt.Errorf("remoting: batch message %d is too large", i)
		}
		out = be.AppendUint32(out, uint32(size))
		out = be.AppendUint32(out, 0)
		out = be.AppendUint32(out, 0)
		out = be.AppendUint32(out, uint32(m.Flag))
		out = be.AppendUint32(out, uint32(len(m.Body)))
		out = append(out, m.Body...)
		out = be.AppendUint16(out, uint16(len(m.Properties)))
		out = append(out, m.Properties...)
	}
	return out, nil
}

// DecodeBatch parses a SEND_BATCH_MESSAGE body. Bodies alias body. Each
// entry's totalSize must match its parsed length; the properties length is
// read unsigned (the Go client writes it so).
func DecodeBatch(body []byte) ([]BatchMessage, error) {
	var out []BatchMessage
	for len(body) > 0 {
		r := &reader{b: body}
		size := r.i32()
		if r.err != nil {
			return nil, fmt.Errorf("batch message %d: %w", len(out), r.err)
		}
		if size < 22 || int64(size) > int64(len(body)) {
			return nil, fmt.Errorf("%w: batch message %d: totalSize %d with %d bytes left", ErrMessage, len(out), size, len(body))
		}
		r.b = body[4:size]
		r.i32() // magic code
		r.i32() // body CRC
		var m BatchMessage
		m.Flag = r.i32()
		bodyLen := r.i32()
		if r.err == nil && bodyLen < 0 {
			return nil, fmt.Errorf("%w: batch message %d: body length %d", ErrMessage, len(out), bodyLen)
		}
		m.Body = r.take(int(bodyLen))
		m.Properties = string(r.take(int(r.u16())))
		if r.err != nil {
			return nil, fmt.Errorf("batch message %d: %w", len(out), r.err)
		}
		if len(r.b) != 0 {
			return nil, fmt.Errorf("%w: batch message %d: totalSize %d leaves %d unparsed bytes", ErrMessage, len(out), size, len(r.b))
		}
		out = append(out, m)
		body = body[size:]
	}
	return out, nil
}

// Property separators.
const (
	NameValueSeparator = '\x01'
	PropertySeparator  = '\x02'
)

// EncodeProperties returns props as "key\x01value\x02" pairs in sorted key
// order. Keys or values containing a separator cannot round-trip.
func EncodeProperties(props map[string]string) string {
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(NameValueSeparator)
		b.WriteString(props[k])
		b.WriteByte(PropertySeparator)
	}
	return b.String()
}

// DecodeProperties parses "key\x01value\x02" pairs. As the Go client does,
// items that do not contain exactly one \x01 are skipped; a later key wins.
func DecodeProperties(s string) map[string]string {
	props := map[string]string{}
	for item := range strings.SplitSeq(s, string(PropertySeparator)) {
		k, v, ok := strings.Cut(item, string(NameValueSeparator))
		if !ok || strings.IndexByte(v, NameValueSeparator) >= 0 {
			continue
		}
		props[k] = v
	}
	return props
}

// OffsetMsgID is the broker-assigned message id: upper-case hex of the
// store host's address, its port (int32) and the commit-log offset.
func OffsetMsgID(storeHost netip.AddrPort, commitLogOffset int64) string {
	b := appendHost(nil, storeHost)
	b = binary.BigEndian.AppendUint64(b, uint64(commitLogOffset))
	return strings.ToUpper(hex.EncodeToString(b))
}

// ParseOffsetMsgID reverses OffsetMsgID (32 hex digits for IPv4 hosts, 56
// for IPv6).
func ParseOffsetMsgID(id string) (storeHost netip.AddrPort, commitLogOffset int64, err error) {
	b, err := hex.DecodeString(id)
	if err != nil || (len(b) != 16 && len(b) != 28) {
		return netip.AddrPort{}, 0, fmt.Errorf("%w: message id %q", ErrMessage, id)
	}
	r := &reader{b: b}
	storeHost = r.host(len(b) == 28)
	commitLogOffset = r.i64()
	if r.err != nil {
		return netip.AddrPort{}, 0, r.err
	}
	return storeHost, commitLogOffset, nil
}
