// ProducerService: the pproxy wire contract (DDMQ-compatible).
// Written from shared/reference/wire-contract.md §2 and §8. Field ids, types
// and requiredness are wire protocol: never renumber, never change a type.
// Transport: framed; protocol: compact (binary is also accepted by pproxy).

namespace go carrera.producer
namespace java com.xiaojukeji.carrera.thrift

const string PRESSURE_TRAFFIC_KEY = "isPressureTraffic"
const string PRESSURE_TRAFFIC_ENABLE = "true"
const string PRESSURE_TRAFFIC_DISABLE = "false"
const string TRACE_ID = "traceId"
const string SPAN_ID = "spanId"
const string CARRERA_HEADERS = "carrera_headers"

// A message to produce.
struct Message {
    1: string topic
    2: string key                           // <= 255 chars; Kafka record key / RocketMQ KEYS
    3: string value                         // legacy text body, used only when body is absent
    4: i64 hashId                           // partition hash when partitionId == -1
    5: string tags                          // <= 255 chars
    6: i32 partitionId = -1                 // >=0 explicit, -1 by hashId, < -1 random
    7: optional binary body                 // wins over value
    8: optional string version
    9: optional map<string, string> properties
}

struct Result {
    1: i32 code
    2: string msg
    3: optional string key                  // never filled by the proxy
}

struct DelayMessage {
    1: string topic
    2: optional string uniqDelayMsgId
    3: optional binary body
    4: string tags
    5: i32 action                           // 1 ADD, 2 CANCEL
    6: optional i64 timestamp               // epoch seconds
    7: optional i32 dmsgtype                // 2 DELAY, 3 LOOP_DELAY, 4 LOOP_EXPONENT_DELAY
    8: optional i64 interval
    9: optional i64 expire
    10: optional i64 times
    11: optional string uuid
    // there is no field 12
    13: optional string version
    14: optional map<string, string> properties
}

struct DelayResult {
    1: i32 code
    2: string msg
    3: string uniqDelayMsgId
}

// Declared in DDMQ, used by no RPC.
struct DelayMeta {
    1: i64 timestamp
    2: optional i32 dmsgtype
    3: optional i64 interval
    4: optional i64 expire
    5: optional i64 times
    7: optional map<string, string> properties
}

// Declared in DDMQ, used by no RPC.
struct RestMessage {
    1: i8 type = 1
    2: i8 mode = 1
    3: string url
    4: map<string, string> params
    5: map<string, string> headers
    6: i64 timestamp
    7: i64 expire
    8: i64 timeout
    9: i32 retryCnt = 3
}

service ProducerService {
    Result sendSync(1: Message message, 2: i64 timeout)
    Result sendBatchSync(1: list<Message> messages)
    Result sendAsync(1: Message message)
    DelayResult sendDelaySync(1: DelayMessage delayMessage, 2: i64 timeout)
}
