package remoting

import "encoding/json"

// MasterID is the broker id of a master in BrokerData.BrokerAddrs.
const MasterID = "0"

// QueueData is one queueDatas entry of a GET_ROUTEINFO_BY_TOPIC body: the
// queue counts and permission of a topic on one broker.
type QueueData struct {
	BrokerName     string `json:"brokerName"`
	ReadQueueNums  int    `json:"readQueueNums"`
	WriteQueueNums int    `json:"writeQueueNums"`
	Perm           int    `json:"perm"`
	TopicSynFlag   int    `json:"topicSynFlag"`
}

// BrokerData is one brokerDatas entry of a GET_ROUTEINFO_BY_TOPIC body
// (also the values of GET_BROKER_CLUSTER_INFO's brokerAddrTable): a broker
// name and its addresses by broker id (MasterID for the master).
type BrokerData struct {
	Cluster     string            `json:"cluster"`
	BrokerName  string            `json:"brokerName"`
	BrokerAddrs map[string]string `json:"brokerAddrs"`
}

// TopicRouteData is the decoded body of a GET_ROUTEINFO_BY_TOPIC answer
// (orderTopicConf and filterServerTable are not kept).
type TopicRouteData struct {
	QueueDatas  []QueueData  `json:"queueDatas"`
	BrokerDatas []BrokerData `json:"brokerDatas"`
}

// DecodeTopicRoute decodes a GET_ROUTEINFO_BY_TOPIC body. Java NameServers
// write the brokerAddrs keys as bare numbers ({0:"host:port"}), which is
// not JSON; they are quoted before decoding. The error is encoding/json's.
func DecodeTopicRoute(body []byte) (*TopicRouteData, error) {
	var rd TopicRouteData
	if err := json.Unmarshal(quoteNumericKeys(body), &rd); err != nil {
		return nil, err
	}
	return &rd, nil
}

// Masters returns the master address of every broker of rd that has one,
// by broker name.
func (rd *TopicRouteData) Masters() map[string]string {
	m := make(map[string]string, len(rd.BrokerDatas))
	for _, bd := range rd.BrokerDatas {
		if addr := bd.BrokerAddrs[MasterID]; addr != "" {
			m[bd.BrokerName] = addr
		}
	}
	return m
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
