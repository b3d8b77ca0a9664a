package rocketmq

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"

	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/rocketmq/remoting"
)

// Queue is one message queue of a topic.
type Queue struct {
	Broker string // broker name
	ID     int    // queue id within the broker
}

// Route is what the producer needs of a topic's route: its writable queues
// sorted by (broker name, queue id) (behaviour.md §1.5: rocketmq-client-go
// v2.1.2 does not sort its publish list; DDMQ's Java client produced this
// order, so hash placement stays compatible), and the master address of
// every broker.
type Route struct {
	Queues  []Queue
	Brokers map[string]string // broker name → master address
}

// nsRouteBody is the NameServer's GET_ROUTEINFO_BY_TOPIC body.
type nsRouteBody struct {
	OrderTopicConf string `json:"orderTopicConf"`
	QueueDatas     []struct {
		BrokerName     string `json:"brokerName"`
		ReadQueueNums  int    `json:"readQueueNums"`
		WriteQueueNums int    `json:"writeQueueNums"`
		Perm           int    `json:"perm"`
	} `json:"queueDatas"`
	BrokerDatas []struct {
		Cluster     string            `json:"cluster"`
		BrokerName  string            `json:"brokerName"`
		BrokerAddrs map[string]string `json:"brokerAddrs"`
	} `json:"brokerDatas"`
}

// masterID is the broker id of a master in brokerAddrs.
const masterID = "0"

// maxQueuesPerBroker bounds writeQueueNums taken from a route, so a corrupt
// route cannot make the producer allocate without limit (RocketMQ's own
// limit on a topic's queue count is far lower in practice).
const maxQueuesPerBroker = 1 << 16

// ParseRoute decodes a GET_ROUTEINFO_BY_TOPIC body into the sorted list of
// writable queues of brokers that have a master. Java NameServers write the
// brokerAddrs keys as bare numbers ({0:"host:port"}), which is not JSON;
// they are quoted before decoding. orderTopicConf is ignored: the queues
// come from queueDatas as for any other topic.
func ParseRoute(body []byte) (*Route, error) {
	var rd nsRouteBody
	if err := json.Unmarshal(quoteNumericKeys(body), &rd); err != nil {
		return nil, fmt.Errorf("rocketmq: route: %w", err)
	}
	r := &Route{Brokers: map[string]string{}}
	for _, bd := range rd.BrokerDatas {
		if addr := bd.BrokerAddrs[masterID]; addr != "" {
			r.Brokers[bd.BrokerName] = addr
		}
	}
	seen := map[Queue]bool{}
	for _, qd := range rd.QueueDatas {
		if qd.Perm&remoting.PermWrite == 0 || r.Brokers[qd.BrokerName] == "" {
			continue
		}
		n := min(qd.WriteQueueNums, maxQueuesPerBroker)
		for id := range n {
			q := Queue{Broker: qd.BrokerName, ID: id}
			if !seen[q] {
				seen[q] = true
				r.Queues = append(r.Queues, q)
			}
		}
	}
	slices.SortFunc(r.Queues, func(a, b Queue) int {
		return cmp.Or(cmp.Compare(a.Broker, b.Broker), cmp.Compare(a.ID, b.ID))
	})
	return r, nil
}

// quoteNumericKeys returns b with object keys that are bare integers
// quoted, leaving strings untouched. Valid JSON comes back unchanged.
func quoteNumericKeys(b []byte) []byte {
	var out []byte // allocated on the first change
	inStr, esc := false, false
	expectKey := false // after '{' or ',' inside an object, before a key
	var depth []byte   // '{' or '['
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inStr {
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
			if out != nil {
				out = append(out, c)
			}
			continue
		}
		switch c {
		case '"':
			inStr, expectKey = true, false
		case '{':
			depth = append(depth, c)
			expectKey = true
		case '[':
			depth = append(depth, c)
			expectKey = false
		case '}', ']':
			if len(depth) > 0 {
				depth = depth[:len(depth)-1]
			}
			expectKey = false
		case ',':
			expectKey = len(depth) > 0 && depth[len(depth)-1] == '{'
		case ' ', '\t', '\r', '\n':
		default:
			if expectKey && (c == '-' || (c >= '0' && c <= '9')) {
				j := i + 1
				for j < len(b) && b[j] >= '0' && b[j] <= '9' {
					j++
				}
				if out == nil {
					out = append(make([]byte, 0, len(b)+16), b[:i]...)
				}
				out = append(out, '"')
				out = append(out, b[i:j]...)
				out = append(out, '"')
				i = j - 1
				expectKey = false
				continue
			}
			expectKey = false
		}
		if out != nil {
			out = append(out, c)
		}
	}
	if out == nil {
		return b
	}
	return out
}

// pickQueue chooses a queue index of r for sel (behaviour.md §1.5):
//
//   - AvoidBroker set (the proxy-side retry): a random start, then the
//     first queue whose broker differs; any queue if every queue is on
//     that broker;
//   - PartitionID >= 0: PartitionID mod n (wrapped reports true so the
//     caller can warn when PartitionID >= n);
//   - PartitionID == -1: NonNegMod(HashID, n);
//   - PartitionID < -1: random.
func pickQueue(r *Route, sel mq.Selector) (idx int, wrapped bool, err error) {
	n := len(r.Queues)
	if n == 0 {
		return 0, false, fmt.Errorf("%w: no writable queue", mq.ErrTopicNotExist)
	}
	switch {
	case sel.AvoidBroker != "":
		start := rand.IntN(n)
		for k := range n {
			i := (start + k) % n
			if r.Queues[i].Broker != sel.AvoidBroker {
				return i, false, nil
			}
		}
		return start, false, nil
	case sel.PartitionID >= 0:
		return int(sel.PartitionID) % n, int(sel.PartitionID) >= n, nil
	case sel.PartitionID == -1:
		return mq.NonNegMod(sel.HashID, n), false, nil
	default:
		return rand.IntN(n), false, nil
	}
}

// routeRequest is the GET_ROUTEINFO_BY_TOPIC request for topic.
func routeRequest(topic string) *remoting.Command {
	return remoting.NewRequest(remoting.GetRouteInfoByTopic, map[string]string{"topic": topic}, nil)
}

// routeFromResponse interprets a NameServer's answer: success with a body →
// the route; 17 → mq.ErrTopicNotExist; anything else → *remoting.CodeError.
func routeFromResponse(topic string, resp *remoting.Command) (*Route, error) {
	switch resp.Code {
	case remoting.Success:
		if len(resp.Body) == 0 {
			return nil, &remoting.CodeError{Code: resp.Code, Remark: "empty route body"}
		}
		r, err := ParseRoute(resp.Body)
		if err != nil {
			return nil, err
		}
		if len(r.Queues) == 0 {
			return nil, fmt.Errorf("%w: topic %q has no writable queue", mq.ErrTopicNotExist, topic)
		}
		return r, nil
	case remoting.TopicNotExist:
		return nil, fmt.Errorf("%w: topic %q: %w", mq.ErrTopicNotExist, topic,
			&remoting.CodeError{Code: resp.Code, Remark: resp.Remark})
	default:
		return nil, &remoting.CodeError{Code: resp.Code, Remark: resp.Remark}
	}
}

// String is "<broker>/<id>", for logs.
func (q Queue) String() string { return q.Broker + "/" + strconv.Itoa(q.ID) }
