package cproxy

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"sync"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/ddmq-go/carrera/gen-go/carrera/consumer"
	"github.com/ddmq-go/carrera/internal/thriftserver"
)

// NewProcessor returns the ConsumerService processor for h: the generated
// processor, with "pull" answered by pullProcessor. The server and the
// tests use it, so both exercise the same encoder.
func NewProcessor(h *Handler) thrift.TProcessor {
	p := consumer.NewConsumerServiceProcessor(h)
	generated, _ := p.GetProcessorFunction("pull") // always registered by the generated constructor
	p.AddToProcessorMap("pull", &pullProcessor{pull: h.pull, generated: generated})
	return p
}

// pullProcessor answers "pull". Over the compact protocol on a transport
// that can reference slices (thriftserver's, thriftserver.RefWriter) it
// writes the reply itself: the generated code would build a
// consumer.Message per delivery, look up the compact type of every field in
// a map, and copy every body into the reply buffer; here the fixed layout
// of the reply is appended to a small buffer and the bodies are handed to
// the transport by reference, to be written by the same vectored write as
// the rest of the frame. Any other protocol or transport (binary clients,
// tests with memory transports) takes the generated path unchanged.
//
// The bytes are those of thrift's TCompactProtocol writing the generated
// ConsumerServicePullResult (pullreply_test.go compares them).
type pullProcessor struct {
	pull      func(context.Context, *consumer.PullRequest) (pulled, error) // Handler.pull
	generated thrift.TProcessorFunction
}

func (p *pullProcessor) Process(ctx context.Context, seqID int32, iprot, oprot thrift.TProtocol) (bool, thrift.TException) {
	if _, ok := oprot.(*thrift.TCompactProtocol); !ok {
		return p.generated.Process(ctx, seqID, iprot, oprot)
	}
	out := oprot.Transport()
	ref, ok := out.(thriftserver.RefWriter)
	if !ok {
		return p.generated.Process(ctx, seqID, iprot, oprot)
	}

	// As the generated Process, minus its connectivity-check goroutine:
	// thriftserver disables it (ServerConnectivityCheckInterval = 0) and
	// cancels request contexts itself.
	var args consumer.ConsumerServicePullArgs
	if err := args.Read(ctx, iprot); err != nil {
		_ = iprot.ReadMessageEnd(ctx) // a no-op in both protocols
		x := thrift.NewTApplicationException(thrift.PROTOCOL_ERROR, err.Error())
		_ = oprot.WriteMessageBegin(ctx, "pull", thrift.EXCEPTION, seqID) // a failed write fails Flush
		_ = x.Write(ctx, oprot)
		_ = oprot.WriteMessageEnd(ctx)
		_ = oprot.Flush(ctx) // the connection is closed anyway (success = false)
		return false, thrift.WrapTException(err)
	}
	_ = iprot.ReadMessageEnd(ctx)

	r, err := p.pull(ctx, args.Request)
	if err != nil {
		return writePullError(ctx, seqID, oprot, err)
	}
	e := pullEncoders.Get().(*pullEncoder)
	e.w, e.ref = out, ref
	werr := e.encode(seqID, r)
	e.release()
	if ferr := oprot.Flush(ctx); werr == nil {
		werr = ferr
	}
	if werr != nil {
		return false, thrift.WrapTException(werr)
	}
	return true, nil
}

// writePullError answers a pull whose handler failed, exactly as the
// generated processor does: a declared PullException in the result struct,
// ErrAbandonRequest with no answer, anything else as INTERNAL_ERROR.
func writePullError(ctx context.Context, seqID int32, oprot thrift.TProtocol, err error) (bool, thrift.TException) {
	texc := thrift.WrapTException(err)
	var werr error
	keep := func(e error) {
		if werr == nil {
			werr = e
		}
	}
	// The exact type, not errors.As: the generated code's type switch.
	if v, ok := err.(*consumer.PullException); ok {
		result := consumer.ConsumerServicePullResult{Error: v}
		keep(oprot.WriteMessageBegin(ctx, "pull", thrift.REPLY, seqID))
		keep(result.Write(ctx, oprot))
	} else {
		if errors.Is(err, thrift.ErrAbandonRequest) {
			return false, texc
		}
		x := thrift.NewTApplicationException(thrift.INTERNAL_ERROR, "Internal error processing pull: "+err.Error())
		keep(oprot.WriteMessageBegin(ctx, "pull", thrift.EXCEPTION, seqID))
		keep(x.Write(ctx, oprot))
	}
	keep(oprot.WriteMessageEnd(ctx))
	keep(oprot.Flush(ctx))
	if werr != nil {
		return false, thrift.WrapTException(werr)
	}
	return true, texc
}

// Compact protocol constants of the pull reply. A field header is one byte,
// (id − previous id) << 4 | type, when the delta is 1..15 — true of every
// field of the reply except the result's field 0, which thrift writes as
// the type byte and the id as a zigzag varint (0 is not above the initial
// "previous id" 0).
const (
	compactReplyHeader = thrift.COMPACT_VERSION&thrift.COMPACT_VERSION_MASK |
		byte(thrift.REPLY)<<thrift.COMPACT_TYPE_SHIFT_AMOUNT&thrift.COMPACT_TYPE_MASK
	fieldNext  = 1 << 4 // field id = previous + 1
	fieldStop  = 0
	fieldZero  = 0 // zigzag varint of field id 0
	typeBinary = thrift.COMPACT_BINARY
	typeI64    = thrift.COMPACT_I64
	typeList   = thrift.COMPACT_LIST
	typeMap    = thrift.COMPACT_MAP
	typeStruct = thrift.COMPACT_STRUCT
	// shortListMax is the largest list size that fits the list header byte.
	shortListMax = 14
)

// Scratch-buffer bounds: the encoder hands its buffer to the transport
// after a message once it holds this many bytes (so a batch of small
// messages is not built twice in full), and a buffer that grew beyond
// encoderRetain (huge keys or properties) is not pooled.
const (
	encoderFlushBytes = 4 << 10
	encoderRetain     = 64 << 10
)

// pullEncoder writes one pull reply: small bytes are appended to buf and
// written to w before every body handed to ref and at the end.
type pullEncoder struct {
	w   io.Writer
	ref thriftserver.RefWriter
	buf []byte
	err error // first error of w
}

var pullEncoders = sync.Pool{New: func() any { return &pullEncoder{buf: make([]byte, 0, encoderFlushBytes+1024)} }}

// release returns e to the pool.
func (e *pullEncoder) release() {
	e.w, e.ref, e.err = nil, nil, nil
	if cap(e.buf) > encoderRetain {
		return
	}
	e.buf = e.buf[:0]
	pullEncoders.Put(e)
}

// flush writes b (the small bytes so far) and returns the emptied buffer.
func (e *pullEncoder) flush(b []byte) []byte {
	if len(b) > 0 && e.err == nil {
		_, e.err = e.w.Write(b)
	}
	return b[:0]
}

// encode writes message begin ("pull", REPLY, seqID), the
// ConsumerServicePullResult with field 0 = PullResponse{context, messages}
// for r, and returns the first write error. The transport is not flushed.
func (e *pullEncoder) encode(seqID int32, r pulled) error {
	b := e.buf[:0]
	b = append(b, thrift.COMPACT_PROTOCOL_ID, compactReplyHeader)
	b = binary.AppendUvarint(b, uint64(uint32(seqID))) //nolint:gosec // thrift writes the seqid as an unsigned varint32
	b = appendString(b, "pull")

	b = append(b, typeStruct, fieldZero)                       // ConsumerServicePullResult.success (0)
	b = append(b, fieldNext|typeStruct)                        // PullResponse.context (1)
	b = appendString(append(b, fieldNext|typeBinary), r.group) // Context.groupId (1)
	b = appendString(append(b, fieldNext|typeBinary), r.topic) // Context.topic (2)
	b = appendString(append(b, fieldNext|typeBinary), r.qid)   // Context.qid (3)
	b = append(b, fieldStop, fieldNext|typeList)               // end of Context; PullResponse.messages (2)
	if n := len(r.msgs); n <= shortListMax {
		b = append(b, byte(n)<<4|typeStruct)
	} else {
		b = appendSize(append(b, 0xf0|typeStruct), n)
	}
	for _, d := range r.msgs {
		// As toThrift: a nil body is an empty binary, properties only when
		// there are some.
		b = appendString(append(b, fieldNext|typeBinary), d.Key)     // Message.key (1)
		b = appendSize(append(b, fieldNext|typeBinary), len(d.Body)) // Message.value (2)
		if len(d.Body) < thriftserver.MinRefBytes {
			b = append(b, d.Body...)
		} else {
			if b = e.flush(b); e.err != nil {
				e.buf = b
				return e.err
			}
			e.ref.WriteRef(d.Body)
		}
		b = appendString(append(b, fieldNext|typeBinary), d.Tags)     // Message.tag (3)
		b = append(b, fieldNext|typeI64)                              // Message.offset (4)
		b = binary.AppendUvarint(b, uint64(d.Offset<<1^d.Offset>>63)) //nolint:gosec // zigzag
		if len(d.Properties) > 0 {
			b = append(b, fieldNext|typeMap) // Message.properties (5)
			b = appendSize(b, len(d.Properties))
			b = append(b, typeBinary<<4|typeBinary)
			for k, v := range d.Properties {
				b = appendString(appendString(b, k), v)
			}
		}
		b = append(b, fieldStop) // end of Message
		if len(b) >= encoderFlushBytes {
			b = e.flush(b)
		}
	}
	b = append(b, fieldStop, fieldStop) // end of PullResponse, of the result
	e.buf = e.flush(b)
	return e.err
}

// appendSize appends a length or element count as thrift's compact
// protocol does: an unsigned varint of its int32 value.
func appendSize(b []byte, n int) []byte {
	return binary.AppendUvarint(b, uint64(uint32(int32(n)))) //nolint:gosec // thrift writes sizes as varint32
}

// appendString appends a compact-protocol string (or binary).
func appendString(b []byte, s string) []byte {
	return append(appendSize(b, len(s)), s...)
}
