// Package remoting speaks Apache RocketMQ's remoting protocol (JSON header
// codec): the frame codec, the request/response code table, the message
// encodings brokers use, and a small connection-level client. It is shared
// by the test broker (internal/testbroker/rocketmq) and by the RocketMQ
// backend's own offset/admin calls (internal/mq/rocketmq), which the
// library rocketmq-client-go does not expose.
//
// # Frames
//
//	int32 totalLength = 4 + headerLength + bodyLength   (big-endian)
//	int32 (codec << 24) | headerLength                  (codec 0 = JSON)
//	header (JSON of Command without Body), body
//
// Command is one request or response. Command.Encode returns a complete
// frame; Decode parses one (the body aliases the input); ReadCommand reads
// one from a stream and refuses frames above a bound (DefaultMaxFrame,
// 16 MiB) before reading them. Every malformed input gives an error
// wrapping ErrFrame, never a panic. NewRequest / NewResponse build
// commands; CheckCode turns an unexpected response code into a *CodeError.
//
// # Codes
//
// codes.go holds the request codes (SendMessage, PullMessage,
// QueryConsumerOffset, UpdateConsumerOffset, GetMaxOffset, GetMinOffset,
// SearchOffsetByTimestamp, ConsumerSendMsgBack, HeartBeat,
// GetConsumerListByGroup, NotifyConsumerIDsChanged, GetRouteInfoByTopic,
// CreateTopic, ...), the response codes (Success, SystemError,
// RequestCodeNotSupported, TopicNotExist, PullNotFound, PullOffsetMoved,
// QueryNotFound, ...), message and pull sysFlag bits, property keys
// (PropertyTags, PropertyKeys, PropertyUniqKey, PropertyRetryTopic, ...) and
// the %RETRY% / %DLQ% prefixes.
//
// # Messages
//
// StoredMessage is the layout of PULL response bodies (and of the test
// broker's store): AppendStoredMessage / EncodeStoredMessage and
// DecodeStoredMessages (IPv4 and IPv6 hosts, selected by the sysFlag bits
// FlagBornHostV6/FlagStoreHostV6; MessageMagicCodeV2 records with a
// two-byte topic length are read too). BatchMessage with EncodeBatch /
// DecodeBatch is the SEND_BATCH_MESSAGE (320) body. Properties travel as the
// raw string "key\x01value\x02..."; EncodeProperties (sorted keys) and
// DecodeProperties convert to and from maps. OffsetMsgID /
// ParseOffsetMsgID build and parse the broker's message id (store host +
// commit-log offset, upper-case hex).
//
// # Client
//
//	c, err := remoting.Dial(ctx, "127.0.0.1:9876",
//		remoting.WithRequestHandler(func(req *remoting.Command) *remoting.Command {
//			// e.g. req.Code == remoting.NotifyConsumerIDsChanged
//			return nil // no answer
//		}))
//	defer c.Close()
//	resp, err := c.Invoke(ctx, remoting.NewRequest(remoting.QueryConsumerOffset,
//		map[string]string{"consumerGroup": g, "topic": t, "queueId": "0"}, nil))
//	// resp.Code == remoting.Success → resp.Ext("offset"); QueryNotFound → none stored
//
// A Client is one TCP connection, safe for concurrent use. Invoke assigns a
// fresh opaque to a copy of the request and waits for the matching
// response, the context, or the connection's end; response codes are not
// errors. InvokeOneway writes without waiting. Server → client requests go
// to the RequestHandler on their own goroutine. One read-loop goroutine per
// client; Close stops it and waits for it. A failed connection is not
// redialled: Done() is closed and Err() says why; callers dial again.
package remoting
