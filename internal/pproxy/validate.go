package pproxy

import (
	"strings"
	"unicode"

	"github.com/ddmq-go/carrera/gen-go/carrera/producer"
	"github.com/ddmq-go/carrera/internal/javastr"
)

// Limits of the producer message (behaviour.md §1.2).
const (
	maxKeyChars  = 255
	maxTagsChars = 255
)

// reservedProperties are RocketMQ's reserved property names
// (wire-contract.md §8.2); a producer message carrying one is illegal,
// whatever the backend.
var reservedProperties = map[string]struct{}{
	"TRACE_ON": {}, "MSG_REGION": {}, "KEYS": {}, "TAGS": {}, "WAIT": {}, "DELAY": {},
	"RETRY_TOPIC": {}, "REAL_TOPIC": {}, "REAL_QID": {}, "TRAN_MSG": {}, "PGROUP": {},
	"MIN_OFFSET": {}, "MAX_OFFSET": {}, "BUYER_ID": {}, "ORIGIN_MESSAGE_ID": {},
	"TRANSFER_FLAG": {}, "CORRECTION_FLAG": {}, "MQ2_FLAG": {}, "RECONSUME_TIME": {},
	"UNIQ_KEY": {}, "MAX_RECONSUME_TIMES": {}, "CONSUME_START_TIME": {},
}

// isBlank reports whether s is empty or only whitespace (Java's
// StringUtils.isBlank).
func isBlank(s string) bool {
	return strings.TrimFunc(s, unicode.IsSpace) == ""
}

// validProperties applies rule 4 of §1.2.
func validProperties(props map[string]string) bool {
	for k, v := range props {
		if isBlank(k) || isBlank(v) {
			return false
		}
		if _, reserved := reservedProperties[k]; reserved {
			return false
		}
	}
	return true
}

// messageBody returns the body of m: body when set, else the UTF-8 bytes of
// the legacy value field.
func messageBody(m *producer.Message) []byte {
	if m.IsSetBody() {
		return m.Body
	}
	return []byte(m.Value)
}

// validateMessage applies behaviour.md §1.2 to a producer message. It runs
// before the topic is resolved. innerPrefix is the delay inner-topic prefix
// ("" when delay is disabled); maxBody is the topic's body limit on this
// pproxy. It returns the body to send and false when the message is illegal
// (FAIL_ILLEGAL_MSG).
func validateMessage(m *producer.Message, innerPrefix string, maxBody int) ([]byte, bool) {
	if m == nil || m.Topic == "" {
		return nil, false
	}
	if m.Key != "" && javastr.Len(m.Key) > maxKeyChars {
		return nil, false
	}
	if m.Tags != "" && javastr.Len(m.Tags) > maxTagsChars {
		return nil, false
	}
	if !validProperties(m.Properties) {
		return nil, false
	}
	if innerPrefix != "" && strings.HasPrefix(m.Topic, innerPrefix) {
		return nil, false
	}
	body := messageBody(m)
	if len(body) == 0 || len(body) > maxBody {
		return nil, false
	}
	return body, true
}
