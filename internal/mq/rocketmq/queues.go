package rocketmq

import (
	"cmp"
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
	rd, err := remoting.DecodeTopicRoute(body)
	if err != nil {
		return nil, fmt.Errorf("rocketmq: route: %w", err)
	}
	r := &Route{Brokers: rd.Masters()}
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
