package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Group and subscription defaults (zookeeper-layout.md §5.5, §5.6, §5.8,
// §5.9).
const (
	DefaultAsyncThreads               = 8
	DefaultDelayRequestHandlerThreads = -1
	DefaultDelayTimeThreshold         = 300000 // ms, monitoring only
	DefaultCommittedLagThreshold      = 10000  // monitoring only

	DefaultFetchThreads     = 1
	DefaultConcurrency      = 1024
	DefaultMaxConsumeLag    = -1 // unlimited
	DefaultTimeout          = 5000
	DefaultMaxRetry         = 2
	DefaultHTTPMaxTps       = -1
	DefaultMaxPullBatchSize = 8

	DefaultRedisTimeout  = 5000
	DefaultHdfsFileCount = 128

	// MaxGroupNameLength bounds GroupConfig.Group.
	MaxGroupNameLength = 255

	// TagAll is the RocketMQ tag expression matching every tag.
	TagAll = "*"
)

// DefaultRetryIntervals is the default UpstreamTopic.retryIntervals (ms).
// Callers must not modify it.
var DefaultRetryIntervals = []int{100, 150, 300}

// Action names of UpstreamTopic.actions (zookeeper-layout.md §5.7).
const (
	ActionFormParams    = "FormParams"
	ActionFormParams2   = "FormParams2"
	ActionQueryParams   = "QueryParams"
	ActionTransit       = "Transit"
	ActionJSON          = "Json"
	ActionAsync         = "Async"
	ActionNonBlockAsync = "NonBlockAsync"
	ActionGroovy        = "Groovy"
	ActionAsyncHTTP     = "AsyncHttp"
	ActionPullServer    = "PullServer"
	ActionRedis         = "Redis"
	ActionLowLevel      = "LowLevel"
	ActionHdfs          = "Hdfs"
	ActionHbase         = "Hbase"
)

// knownActions maps every valid action name to whether it is terminal
// (must be the last action of a chain).
var knownActions = map[string]bool{
	ActionFormParams: false, ActionFormParams2: false, ActionQueryParams: false,
	ActionTransit: false, ActionJSON: false, ActionAsync: false, ActionNonBlockAsync: false,
	ActionGroovy: false, ActionLowLevel: false,
	ActionAsyncHTTP: true, ActionPullServer: true, ActionRedis: true, ActionHdfs: true, ActionHbase: true,
}

// appendContext values (zookeeper-layout.md §5.6; form parameter names in
// wire-contract.md §8.3).
const (
	AppendTopic      = "TOPIC"
	AppendGroup      = "GROUP"
	AppendOffset     = "OFFSET"
	AppendQID        = "QID"
	AppendSource     = "SOURCE"
	AppendMsgKey     = "MSG_KEY"
	AppendToken      = "TOKEN"
	AppendProperties = "PROPERTIES"
)

var knownAppendContext = map[string]bool{
	AppendTopic: true, AppendGroup: true, AppendOffset: true, AppendQID: true,
	AppendSource: true, AppendMsgKey: true, AppendToken: true, AppendProperties: true,
}

// Special orderKey values; anything else is a JsonPath (behaviour.md §2.9).
const (
	OrderByQID = "QID"
	OrderByKey = "KEY"
)

// HTTP methods of UpstreamTopic.httpMethod.
const (
	HTTPMethodPost = "POST"
	HTTPMethodGet  = "GET"
)

// Dead-letter policies (extension key deadLetterPolicy, behaviour.md §4 #7).
const (
	// DeadLetterDrop (default) keeps DDMQ's behaviour: dropped messages are
	// counted and logged, then their offset is released.
	DeadLetterDrop = "drop"
	// DeadLetterDLQ produces dropped and failed messages to deadLetterTopic
	// before their offset is released.
	DeadLetterDLQ = "dlq"
)

var groupNameRE = regexp.MustCompile(`^[%|a-zA-Z0-9_-]+$`)

// GroupConfig is the content of /group/<group> (zookeeper-layout.md §5.5).
type GroupConfig struct {
	// Group is the group name; it equals the node name and is the RocketMQ
	// consumer group / Kafka group.id.
	Group string `json:"group"`
	// Topics are the subscriptions ("subscription units"), one element per
	// topic per broker cluster. Disabled elements are ignored entirely.
	Topics []UpstreamTopic `json:"topics"`
	// AsyncThreads is the number of workers of the group's Async executor
	// and the maximum number of low-level fetchers per group and cluster
	// (default 8).
	AsyncThreads int `json:"asyncThreads"`
	// RedisConfig is needed by subscriptions ending with the Redis action.
	RedisConfig *RedisConfiguration `json:"redisConfig,omitempty"`
	// DelayRequestHandlerThreads: how many Async workers may answer parked
	// long-polls; <= 0 (default -1) means max(asyncThreads/2, 1). See
	// EffectiveDelayRequestHandlerThreads.
	DelayRequestHandlerThreads int `json:"delayRequestHandlerThreads"`
	// MessageModel (extension) overrides, for this group, the messageModel
	// of its RocketMQ clusters' rocketmqConfigs entries: "CLUSTERING" or
	// "BROADCASTING" (every cproxy instance serving the group gets every
	// message). Empty = the cluster's. Ignored on Kafka clusters.
	MessageModel string `json:"messageModel,omitempty"`

	// Monitoring only.
	AlarmGroup            []string `json:"alarmGroup,omitempty"`
	EnableAlarm           bool     `json:"enableAlarm"`
	DelayTimeThreshold    int64    `json:"delayTimeThreshold"`
	CommittedLagThreshold int64    `json:"committedLagThreshold"`
}

// UpstreamTopic is one subscription unit: a topic on one broker cluster,
// element of GroupConfig.topics (zookeeper-layout.md §5.6).
//
// Extension keys of this project (not written by the DDMQ console, ignored
// by DDMQ; behaviour.md §4 #7):
//
//   - deadLetterTopic (string, optional): the topic, on the subscription's
//     broker cluster, that receives the messages this subscription drops
//     (exhausted pull timeouts/nacks, exhausted HTTP retries, non-integer
//     errno) and the messages whose action chain fails (on Kafka, where
//     there is no send-back), before their offset is released. RocketMQ
//     action failures keep the send-back to %RETRY%<group>.
//   - deadLetterPolicy ("drop" | "dlq", case-insensitive, default "drop"):
//     "drop" keeps DDMQ's behaviour (count, log, release the offset);
//     "dlq" enables deadLetterTopic, which is then required.
type UpstreamTopic struct {
	// BrokerCluster is the broker cluster of this unit.
	BrokerCluster string `json:"brokerCluster"`
	// Proxies maps a proxy cluster name to the "ip:port" names of the
	// cproxies serving this unit (default {}). Only the entry of a
	// cproxy's own proxyCluster counts for it (§5.11).
	Proxies map[string][]string `json:"proxies"`
	// Enabled: the subscription is active (alias isEnabled; default false).
	Enabled bool `json:"enabled"`
	// Topic is the subscribed topic.
	Topic string `json:"topic"`
	// Tags is the RocketMQ tag filter; see TagExpression.
	Tags []string `json:"tags,omitempty"`
	// Actions is the ordered action chain (§5.7).
	Actions []string `json:"actions"`
	// FetchThreads: broker-client consume threads (default 1).
	FetchThreads int `json:"fetchThreads"`
	// MaxTps is the per-cproxy consume rate when totalMaxTps <= 0, the rate
	// before the first rebalance, and the low-level fetch rate.
	MaxTps float64 `json:"maxTps"`
	// TotalMaxTps is the consume rate of the whole group on this unit;
	// each cproxy gets its share by assigned queues. Must be > 0.
	TotalMaxTps float64 `json:"totalMaxTps"`
	// Concurrency: max unfinished messages per topic per cproxy (1024).
	Concurrency int `json:"concurrency"`
	// MaxConsumeLag: max started-minus-committable offset per queue; -1
	// (default) unlimited, 0 means concurrency × 3. See
	// EffectiveMaxConsumeLag.
	MaxConsumeLag int64 `json:"maxConsumeLag"`
	// GroovyScript is the script of the Groovy action.
	GroovyScript string `json:"groovyScript,omitempty"`
	// Timeout (ms, default 5000): HTTP request timeout; for pull, the time
	// after which an unacknowledged message is redelivered.
	Timeout int `json:"timeout"`
	// PressureTraffic: deliver messages flagged isPressureTraffic=true
	// (alias isPressureTraffic; default false = skip them).
	PressureTraffic bool `json:"pressureTraffic"`
	// OrderKey is "QID", "KEY", a JsonPath, or "" (no ordering).
	OrderKey string `json:"orderKey,omitempty"`
	// MaxRetry is the error-retry budget (default 2, -1 = infinite).
	MaxRetry int `json:"maxRetry"`
	// RetryIntervals are the business-retry delays in ms (default
	// [100,150,300]); a trailing -1 repeats the previous one forever.
	RetryIntervals []int `json:"retryIntervals"`
	// URLs are the HTTP push targets.
	URLs []string `json:"urls,omitempty"`
	// HTTPMethod is POST (default) or GET, case-insensitive; see Method.
	HTTPMethod string `json:"httpMethod"`
	// QueryParams maps a URL query parameter to a JsonPath.
	QueryParams map[string]string `json:"queryParams,omitempty"`
	// AppendContext lists extra form parameters (Append* values).
	AppendContext []string `json:"appendContext,omitempty"`
	// Transit maps a target JsonPath to a source JsonPath; the key "$"
	// selects the base object.
	Transit map[string]string `json:"transit,omitempty"`
	// TokenKey is the secret of carrera_token (default "").
	TokenKey string `json:"tokenKey"`
	// HTTPMaxTps is the HTTP push rate; <= 0 (default -1) = consume rate.
	HTTPMaxTps float64 `json:"httpMaxTps"`
	// MaxPullBatchSize caps the messages per pull/fetch (default 8).
	MaxPullBatchSize int `json:"maxPullBatchSize"`
	// HdfsConfiguration is required by the Hdfs action.
	HdfsConfiguration *HdfsConfiguration `json:"hdfsConfiguration,omitempty"`
	// HBaseConfiguration is required by the Hbase action. The JSON key is
	// all lower case (Java getter name).
	HBaseConfiguration *HBaseConfiguration `json:"hbaseconfiguration,omitempty"`

	// Monitoring only.
	EnableAlarm           bool  `json:"enableAlarm"`
	DelayTimeThreshold    int64 `json:"delayTimeThreshold"`
	CommittedLagThreshold int64 `json:"committedLagThreshold"`

	// DeadLetterTopic and DeadLetterPolicy are extension keys; see the
	// type comment.
	DeadLetterTopic  string `json:"deadLetterTopic,omitempty"`
	DeadLetterPolicy string `json:"deadLetterPolicy,omitempty"`

	// isNull records a JSON null element (invalid: DDMQ fails on it).
	isNull bool
}

// RedisConfiguration is the group-level redisConfig (§5.8).
type RedisConfiguration struct {
	// Hosts are the Redis "host:port" addresses; one pool per host.
	Hosts []string `json:"hosts"`
	// Password for AUTH; "" = none.
	Password string `json:"password,omitempty"`
	// Timeout (ms) for connect and read (default 5000).
	Timeout int `json:"timeout"`
	// JedisPool holds the pool settings that matter; others are ignored.
	JedisPool RedisPoolConfig `json:"jedisPool"`
}

// RedisPoolConfig is the part of Java's jedisPool block that matters
// (§5.8); the console writes more keys, which are ignored.
type RedisPoolConfig struct {
	MaxTotal      int   `json:"maxTotal"`      // default 8
	MaxIdle       int   `json:"maxIdle"`       // default 8
	MinIdle       int   `json:"minIdle"`       // default 0
	MaxWaitMillis int64 `json:"maxWaitMillis"` // default -1 = wait forever
	TestOnBorrow  bool  `json:"testOnBorrow"`  // default false
}

// DefaultRedisPoolConfig returns the Java pool defaults.
func DefaultRedisPoolConfig() RedisPoolConfig {
	return RedisPoolConfig{MaxTotal: 8, MaxIdle: 8, MaxWaitMillis: -1}
}

// HdfsConfiguration is a subscription's hdfsConfiguration (§5.9).
type HdfsConfiguration struct {
	// RootPath is the filesystem URI and root, e.g. hdfs://nn:8020/data.
	RootPath string `json:"rootPath"`
	// FilePath is the directory pattern under the root (placeholders
	// ${group}, ${topic}, ${yyyy}, ${MM}, ${dd}, ${HH}, ${hh}, ${mm}).
	FilePath string `json:"filePath"`
	UserName string `json:"userName"`
	// Password is required by validation (DDMQ) but unused.
	Password string `json:"password"`
	// FileType: "text" = text files, anything else = SequenceFile.
	FileType string `json:"fileType"`
	// Unused.
	ReExpDatabase string `json:"reExpDatabase"`
	ReExpTable    string `json:"reExpTable"`
	MaxFileCount  int    `json:"maxFileCount"` // default 128
}

// HBaseConfiguration is a subscription's hbaseconfiguration (§5.10).
type HBaseConfiguration struct {
	HbaseZK     string `json:"hbaseZK"`
	HbasePort   string `json:"hbasePort"`   // integer text
	HbaseBuffer string `json:"hbaseBuffer"` // integer text
	User        string `json:"user"`
	Password    string `json:"password"`
	// HBaseTableConfig is required.
	HBaseTableConfig *HBaseTableConfig `json:"hBaseTableConfig"`
}

// HBaseTableConfig is the {hbaseTables:[...]} block.
type HBaseTableConfig struct {
	HbaseTables []HBaseTableInfo `json:"hbaseTables"`
}

// HBaseTableInfo maps source tables to an HBase table.
type HBaseTableInfo struct {
	// OriginalTable is a (Java) regex on the source table name; it is not
	// compiled here.
	OriginalTable string            `json:"originalTable"`
	HbaseTable    string            `json:"hbaseTable"`
	ColumnFamily  string            `json:"columnFamily"`
	NameSpace     string            `json:"nameSpace"`
	Columns       []HBaseColumnInfo `json:"columns"`
}

// HBaseColumnInfo is one column mapping; Key 1 marks a row-key column.
type HBaseColumnInfo struct {
	HbaseColumn string `json:"hbaseColumn"`
	ColumnName  string `json:"columnName"`
	ColumnType  string `json:"columnType"`
	Key         int    `json:"key"`
}

// defaultUpstreamTopic returns an element with the §5.6 defaults.
func defaultUpstreamTopic() UpstreamTopic {
	return UpstreamTopic{
		FetchThreads:          DefaultFetchThreads,
		Concurrency:           DefaultConcurrency,
		MaxConsumeLag:         DefaultMaxConsumeLag,
		Timeout:               DefaultTimeout,
		MaxRetry:              DefaultMaxRetry,
		HTTPMethod:            HTTPMethodPost,
		HTTPMaxTps:            DefaultHTTPMaxTps,
		MaxPullBatchSize:      DefaultMaxPullBatchSize,
		EnableAlarm:           true,
		DelayTimeThreshold:    DefaultDelayTimeThreshold,
		CommittedLagThreshold: DefaultCommittedLagThreshold,
	}
}

func isJSONNull(b []byte) bool { return bytes.Equal(bytes.TrimSpace(b), []byte("null")) }

// UnmarshalJSON applies the defaults of §5.5 before decoding.
func (g *GroupConfig) UnmarshalJSON(b []byte) error {
	type plain GroupConfig
	p := plain{
		AsyncThreads:               DefaultAsyncThreads,
		DelayRequestHandlerThreads: DefaultDelayRequestHandlerThreads,
		EnableAlarm:                true,
		DelayTimeThreshold:         DefaultDelayTimeThreshold,
		CommittedLagThreshold:      DefaultCommittedLagThreshold,
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	if p.Topics == nil {
		p.Topics = []UpstreamTopic{}
	}
	*g = GroupConfig(p)
	return nil
}

// UnmarshalJSON applies the defaults of §5.6 before decoding and accepts
// the aliases isEnabled / isPressureTraffic (the canonical key wins when
// both are present). An absent or null proxies becomes {}, an absent or
// null retryIntervals the default; [] stays empty (give up at once).
func (u *UpstreamTopic) UnmarshalJSON(b []byte) error {
	if isJSONNull(b) {
		*u = UpstreamTopic{isNull: true}
		return nil
	}
	type plain UpstreamTopic
	p := plain(defaultUpstreamTopic())
	aux := struct {
		*plain
		// Shadow the canonical keys to see whether they were present.
		Enabled           *bool `json:"enabled"`
		IsEnabled         *bool `json:"isEnabled"`
		PressureTraffic   *bool `json:"pressureTraffic"`
		IsPressureTraffic *bool `json:"isPressureTraffic"`
	}{plain: &p}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	p.Enabled = firstBool(aux.Enabled, aux.IsEnabled)
	p.PressureTraffic = firstBool(aux.PressureTraffic, aux.IsPressureTraffic)
	if p.Proxies == nil {
		p.Proxies = map[string][]string{}
	}
	if p.RetryIntervals == nil {
		p.RetryIntervals = append([]int(nil), DefaultRetryIntervals...)
	}
	*u = UpstreamTopic(p)
	return nil
}

func firstBool(vals ...*bool) bool {
	for _, v := range vals {
		if v != nil {
			return *v
		}
	}
	return false
}

// UnmarshalJSON applies the defaults of §5.8 before decoding.
func (r *RedisConfiguration) UnmarshalJSON(b []byte) error {
	type plain RedisConfiguration
	p := plain{Timeout: DefaultRedisTimeout, JedisPool: DefaultRedisPoolConfig()}
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*r = RedisConfiguration(p)
	return nil
}

// UnmarshalJSON applies the pool defaults before decoding.
func (c *RedisPoolConfig) UnmarshalJSON(b []byte) error {
	type plain RedisPoolConfig
	p := plain(DefaultRedisPoolConfig())
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*c = RedisPoolConfig(p)
	return nil
}

// UnmarshalJSON applies the defaults of §5.9 before decoding.
func (h *HdfsConfiguration) UnmarshalJSON(b []byte) error {
	type plain HdfsConfiguration
	p := plain{MaxFileCount: DefaultHdfsFileCount}
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*h = HdfsConfiguration(p)
	return nil
}

// ParseGroupConfig decodes and validates a /group/<group> node. Absent keys
// get their defaults; unknown keys are ignored.
func ParseGroupConfig(data []byte) (*GroupConfig, error) {
	var g GroupConfig
	if err := json.Unmarshal(data, &g); err != nil {
		return nil, fmt.Errorf("group config: invalid JSON: %w", err)
	}
	if err := g.Validate(); err != nil {
		name := g.Group
		if name == "" {
			name = "?"
		}
		return nil, fmt.Errorf("group config %q: %w", name, err)
	}
	return &g, nil
}

// Validate checks §5.5 and, for every enabled subscription, §5.6/§5.7.
// Disabled subscriptions are not validated. All problems are reported,
// each naming its key (e.g. "topics[1].urls[0]").
//
// Beyond the spec tables: a null element of topics is invalid (DDMQ fails
// on it); two enabled subscriptions may not name the same topic on the
// same broker cluster (the console writes one element per topic per
// cluster; two would be two conflicting subscriptions of one consumer).
func (g *GroupConfig) Validate() error {
	var p problems
	switch {
	case g.Group == "":
		p.addf("group must not be empty")
	case len(g.Group) > MaxGroupNameLength:
		p.addf("group must be at most %d characters, got %d", MaxGroupNameLength, len(g.Group))
	case !groupNameRE.MatchString(g.Group):
		p.addf("group %q must match %s", g.Group, groupNameRE)
	}
	if g.AsyncThreads <= 0 {
		p.addf("asyncThreads must be > 0, got %d", g.AsyncThreads)
	}
	switch g.MessageModel {
	case "", MessageModelClustering, MessageModelBroadcasting:
	default:
		p.addf("messageModel must be %s or %s, got %q", MessageModelClustering, MessageModelBroadcasting, g.MessageModel)
	}
	if g.DelayTimeThreshold < 0 {
		p.addf("delayTimeThreshold must be >= 0, got %d", g.DelayTimeThreshold)
	}
	if g.CommittedLagThreshold < 0 {
		p.addf("committedLagThreshold must be >= 0, got %d", g.CommittedLagThreshold)
	}
	if g.RedisConfig != nil {
		p.nest("redisConfig", g.RedisConfig.Validate())
	}

	type unitID struct{ topic, cluster string }
	first := map[unitID]int{}
	lowLevel, notLowLevel := -1, -1
	for i := range g.Topics {
		u := &g.Topics[i]
		path := fmt.Sprintf("topics[%d]", i)
		if u.isNull {
			p.addf("%s must not be null", path)
			continue
		}
		if !u.Enabled {
			continue
		}
		p.nest(path, u.Validate())
		if u.LastAction() == ActionRedis && g.RedisConfig == nil {
			p.addf("%s.actions end with %s but the group has no redisConfig", path, ActionRedis)
		}
		id := unitID{u.Topic, u.BrokerCluster}
		if j, dup := first[id]; dup {
			p.addf("%s duplicates topics[%d]: topic %q on brokerCluster %q", path, j, u.Topic, u.BrokerCluster)
		} else {
			first[id] = i
		}
		if u.HasAction(ActionLowLevel) {
			if lowLevel < 0 {
				lowLevel = i
			}
		} else if notLowLevel < 0 {
			notLowLevel = i
		}
	}
	if lowLevel >= 0 && notLowLevel >= 0 {
		p.addf("enabled subscriptions must all or none contain %s: topics[%d] does, topics[%d] does not",
			ActionLowLevel, lowLevel, notLowLevel)
	}
	return p.err()
}

// Validate checks one enabled subscription (§5.6, §5.7). The group-level
// rules (redisConfig for Redis, LowLevel all-or-none, duplicates) are in
// GroupConfig.Validate.
//
// Beyond the spec tables: a terminal action (AsyncHttp, PullServer, Redis,
// Hdfs, Hbase) may appear only as the last action (behaviour.md §2.4);
// maxTps must be >= 0 (a limiter cannot use a negative rate);
// deadLetterPolicy must be "drop" or "dlq", and "dlq" needs
// deadLetterTopic.
func (u *UpstreamTopic) Validate() error {
	var p problems
	if u.BrokerCluster == "" {
		p.addf("brokerCluster must not be empty")
	}
	if u.Topic == "" {
		p.addf("topic must not be empty")
	}
	if u.FetchThreads <= 0 {
		p.addf("fetchThreads must be > 0, got %d", u.FetchThreads)
	}
	if u.MaxTps < 0 {
		p.addf("maxTps must be >= 0, got %v", u.MaxTps)
	}
	if !(u.TotalMaxTps > 0) {
		p.addf("totalMaxTps must be > 0, got %v", u.TotalMaxTps)
	}
	if u.Concurrency <= 0 {
		p.addf("concurrency must be > 0, got %d", u.Concurrency)
	}
	if u.OrderKey != "" && u.OrderKey != OrderByQID && u.OrderKey != OrderByKey {
		if err := ValidateJSONPath(u.OrderKey); err != nil {
			p.addf("orderKey must be %s, %s or a valid JsonPath: %v", OrderByQID, OrderByKey, err)
		}
	}
	for i, v := range u.AppendContext {
		if !knownAppendContext[v] {
			p.addf("appendContext[%d] %q is not one of TOPIC, GROUP, OFFSET, QID, SOURCE, MSG_KEY, TOKEN, PROPERTIES", i, v)
		}
	}
	switch strings.ToLower(u.DeadLetterPolicy) {
	case "", DeadLetterDrop:
	case DeadLetterDLQ:
		if u.DeadLetterTopic == "" {
			p.addf("deadLetterTopic must not be empty when deadLetterPolicy is %q", DeadLetterDLQ)
		}
	default:
		p.addf("deadLetterPolicy must be %q or %q, got %q", DeadLetterDrop, DeadLetterDLQ, u.DeadLetterPolicy)
	}

	// The action chain.
	if len(u.Actions) == 0 {
		p.addf("actions must not be empty")
		return p.err()
	}
	last := len(u.Actions) - 1
	for i, a := range u.Actions {
		terminal, ok := knownActions[a]
		switch {
		case !ok:
			p.addf("actions[%d] %q is not a known action", i, a)
		case terminal && i != last:
			p.addf("actions[%d] %s must be the last action", i, a)
		}
	}
	switch la := u.Actions[last]; la {
	case ActionAsyncHTTP:
		if u.Timeout <= 0 {
			p.addf("timeout must be > 0 for %s, got %d", la, u.Timeout)
		}
		if m := strings.ToUpper(u.HTTPMethod); m != HTTPMethodPost && m != HTTPMethodGet {
			p.addf("httpMethod must be POST or GET, got %q", u.HTTPMethod)
		}
		if len(u.URLs) == 0 {
			p.addf("urls must not be empty for %s", la)
		}
		for i, url := range u.URLs {
			if !strings.HasPrefix(url, "http://") {
				p.addf("urls[%d] %q must start with http://", i, url)
			}
		}
	case ActionPullServer:
		if u.Timeout <= 0 {
			p.addf("timeout must be > 0 for %s, got %d", la, u.Timeout)
		}
		if u.MaxPullBatchSize <= 0 {
			p.addf("maxPullBatchSize must be > 0 for %s, got %d", la, u.MaxPullBatchSize)
		}
	case ActionRedis:
		// redisConfig is checked by the group.
	case ActionHdfs:
		if u.HdfsConfiguration == nil {
			p.addf("hdfsConfiguration is required for %s", la)
		}
	case ActionHbase:
		if u.HBaseConfiguration == nil {
			p.addf("hbaseconfiguration is required for %s", la)
		}
	default:
		if _, ok := knownActions[la]; ok {
			p.addf("actions must end with AsyncHttp, PullServer, Redis, Hdfs or Hbase, got %s", la)
		}
	}
	// Blocks required by an action anywhere in the chain (Hdfs and Hbase
	// are terminal, so they were checked above when present).
	if u.HdfsConfiguration != nil && u.HasAction(ActionHdfs) {
		p.nest("hdfsConfiguration", u.HdfsConfiguration.Validate())
	}
	if u.HBaseConfiguration != nil && u.HasAction(ActionHbase) {
		p.nest("hbaseconfiguration", u.HBaseConfiguration.Validate())
	}
	if u.HasAction(ActionQueryParams) {
		checkPathMap(&p, "queryParams", u.QueryParams, false, ActionQueryParams)
	}
	if u.HasAction(ActionTransit) {
		checkPathMap(&p, "transit", u.Transit, true, ActionTransit)
	}
	return p.err()
}

// checkPathMap requires a non-empty map of JsonPaths (values, and keys too
// when keysArePaths).
func checkPathMap(p *problems, key string, m map[string]string, keysArePaths bool, action string) {
	if len(m) == 0 {
		p.addf("%s must not be empty when %s is used", key, action)
		return
	}
	for _, k := range sortedKeys(m) {
		if keysArePaths {
			if err := ValidateJSONPath(k); err != nil {
				p.addf("%s key %q is not a valid JsonPath: %v", key, k, err)
			}
		} else if k == "" {
			p.addf("%s has an empty parameter name", key)
		}
		if err := ValidateJSONPath(m[k]); err != nil {
			p.addf("%s[%q] %q is not a valid JsonPath: %v", key, k, m[k], err)
		}
	}
}

// Validate checks §5.8.
func (r *RedisConfiguration) Validate() error {
	var p problems
	if len(r.Hosts) == 0 {
		p.addf("hosts must not be empty")
	}
	for i, h := range r.Hosts {
		if strings.TrimSpace(h) == "" {
			p.addf("hosts[%d] must not be empty", i)
		}
	}
	if r.Timeout < 0 {
		p.addf("timeout must be >= 0, got %d", r.Timeout)
	}
	return p.err()
}

// Validate checks §5.9.
func (h *HdfsConfiguration) Validate() error {
	var p problems
	for _, f := range []struct{ key, v string }{
		{"rootPath", h.RootPath}, {"filePath", h.FilePath}, {"userName", h.UserName},
		{"password", h.Password}, {"fileType", h.FileType},
	} {
		if f.v == "" {
			p.addf("%s must not be empty", f.key)
		}
	}
	return p.err()
}

// Validate checks §5.10 (the table mapping is validated although the Hbase
// action only executes script-generated commands).
func (h *HBaseConfiguration) Validate() error {
	var p problems
	if h.HbaseZK == "" {
		p.addf("hbaseZK must not be empty")
	}
	if _, err := strconv.Atoi(h.HbasePort); err != nil {
		p.addf("hbasePort must be an integer, got %q", h.HbasePort)
	}
	if _, err := strconv.Atoi(h.HbaseBuffer); err != nil {
		p.addf("hbaseBuffer must be an integer, got %q", h.HbaseBuffer)
	}
	if h.User == "" {
		p.addf("user must not be empty")
	}
	if h.Password == "" {
		p.addf("password must not be empty")
	}
	if h.HBaseTableConfig == nil {
		p.addf("hBaseTableConfig is required")
		return p.err()
	}
	for i := range h.HBaseTableConfig.HbaseTables {
		p.nest(fmt.Sprintf("hBaseTableConfig.hbaseTables[%d]", i), h.HBaseTableConfig.HbaseTables[i].Validate())
	}
	return p.err()
}

// Validate checks one HBaseTableInfo.
func (t *HBaseTableInfo) Validate() error {
	var p problems
	for _, f := range []struct{ key, v string }{
		{"hbaseTable", t.HbaseTable}, {"columnFamily", t.ColumnFamily}, {"nameSpace", t.NameSpace},
	} {
		if f.v == "" {
			p.addf("%s must not be empty", f.key)
		}
	}
	if len(t.Columns) == 0 {
		p.addf("columns must not be empty")
	}
	for i, c := range t.Columns {
		path := fmt.Sprintf("columns[%d]", i)
		for _, f := range []struct{ key, v string }{
			{"hbaseColumn", c.HbaseColumn}, {"columnName", c.ColumnName}, {"columnType", c.ColumnType},
		} {
			if f.v == "" {
				p.addf("%s.%s must not be empty", path, f.key)
			}
		}
		if c.Key != 0 && c.Key != 1 {
			p.addf("%s.key must be 0 or 1, got %d", path, c.Key)
		}
	}
	return p.err()
}

// ---- Derived values and predicates ----

// EffectiveDelayRequestHandlerThreads returns how many Async workers
// (numbers 0 … n−1) may answer parked long-polls: the configured value when
// > 0 (at most asyncThreads), else max(asyncThreads/2, 1).
func (g *GroupConfig) EffectiveDelayRequestHandlerThreads() int {
	if n := g.DelayRequestHandlerThreads; n > 0 {
		return min(n, max(g.AsyncThreads, 1))
	}
	return max(g.AsyncThreads/2, 1)
}

// EnabledTopics returns the enabled subscriptions, in configuration order
// (pointers into g.Topics).
func (g *GroupConfig) EnabledTopics() []*UpstreamTopic {
	var out []*UpstreamTopic
	for i := range g.Topics {
		if u := &g.Topics[i]; u.Enabled && !u.isNull {
			out = append(out, u)
		}
	}
	return out
}

// Kind returns the group's consumption kind over its enabled subscriptions
// (behaviour.md §2.1): LowLevel if any contains LowLevel (validation makes
// it all), Pull if every one ends with PullServer (lazy start; also when
// none is enabled), Push otherwise.
func (g *GroupConfig) Kind() ConsumeKind {
	return kindOf(g.EnabledTopics())
}

func kindOf(units []*UpstreamTopic) ConsumeKind {
	kind := KindPull
	for _, u := range units {
		switch u.Kind() {
		case KindLowLevel:
			return KindLowLevel
		case KindPush:
			kind = KindPush
		}
	}
	return kind
}

// Warnings returns non-fatal remarks about a valid group, for the caller
// to log.
func (g *GroupConfig) Warnings() []string {
	var w []string
	for _, u := range g.EnabledTopics() {
		if u.OrderKind() == OrderJSONPath && !u.jsonBeforeAsync() {
			w = append(w, fmt.Sprintf("subscription %s@%s: orderKey %q is a JsonPath but no %s action precedes %s; messages will not be ordered",
				u.Topic, u.BrokerCluster, u.OrderKey, ActionJSON, ActionAsync))
		}
		if u.DeadLetterTopic != "" && !u.DLQEnabled() {
			w = append(w, fmt.Sprintf("subscription %s@%s: deadLetterTopic %q is ignored because deadLetterPolicy is %q",
				u.Topic, u.BrokerCluster, u.DeadLetterTopic, DeadLetterDrop))
		}
	}
	return w
}

// ConsumeKind is how a subscription (or a group) is consumed.
type ConsumeKind int

const (
	// KindPull: SDK pull (last action PullServer, no LowLevel); the group's
	// broker consumers start lazily on the first pull.
	KindPull ConsumeKind = iota + 1
	// KindLowLevel: low-level fetch/ack (contains LowLevel); fetchers are
	// created per consumer id.
	KindLowLevel
	// KindPush: HTTP, Redis, HDFS or HBase push; consumers start at once.
	KindPush
)

// String returns "pull", "lowlevel", "push" or "unknown".
func (k ConsumeKind) String() string {
	switch k {
	case KindPull:
		return "pull"
	case KindLowLevel:
		return "lowlevel"
	case KindPush:
		return "push"
	default:
		return "unknown"
	}
}

// OrderKind is the kind of a subscription's orderKey.
type OrderKind int

const (
	OrderNone     OrderKind = iota // no ordering
	OrderQID                       // topic + qid
	OrderKey                       // message key
	OrderJSONPath                  // value at a JsonPath of the JSON body
)

// LastAction returns the last action ("" if there is none).
func (u *UpstreamTopic) LastAction() string {
	if len(u.Actions) == 0 {
		return ""
	}
	return u.Actions[len(u.Actions)-1]
}

// HasAction reports whether the chain contains the action.
func (u *UpstreamTopic) HasAction(name string) bool {
	for _, a := range u.Actions {
		if a == name {
			return true
		}
	}
	return false
}

// IsPullServer reports whether the chain ends with PullServer (SDK pull
// and low-level chains).
func (u *UpstreamTopic) IsPullServer() bool { return u.LastAction() == ActionPullServer }

// IsLowLevel reports whether the chain contains LowLevel (fetch/ack).
func (u *UpstreamTopic) IsLowLevel() bool { return u.HasAction(ActionLowLevel) }

// IsHighLevelPull reports an SDK pull subscription: PullServer without
// LowLevel.
func (u *UpstreamTopic) IsHighLevelPull() bool { return u.IsPullServer() && !u.IsLowLevel() }

// IsHTTP reports an HTTP push subscription (last action AsyncHttp).
func (u *UpstreamTopic) IsHTTP() bool { return u.LastAction() == ActionAsyncHTTP }

// IsRedis reports a Redis sink subscription (last action Redis).
func (u *UpstreamTopic) IsRedis() bool { return u.LastAction() == ActionRedis }

// IsHDFS reports an HDFS sink subscription (last action Hdfs).
func (u *UpstreamTopic) IsHDFS() bool { return u.LastAction() == ActionHdfs }

// IsHBase reports an HBase sink subscription (last action Hbase).
func (u *UpstreamTopic) IsHBase() bool { return u.LastAction() == ActionHbase }

// IsPush reports a push subscription: HTTP, Redis, HDFS or HBase.
func (u *UpstreamTopic) IsPush() bool { return u.IsHTTP() || u.IsRedis() || u.IsHDFS() || u.IsHBase() }

// UsesGroovy reports whether the chain contains the Groovy action (which a
// Go proxy cannot run; behaviour.md §2.13).
func (u *UpstreamTopic) UsesGroovy() bool { return u.HasAction(ActionGroovy) }

// Kind returns LowLevel, Pull or Push (behaviour.md §2.1).
func (u *UpstreamTopic) Kind() ConsumeKind {
	switch {
	case u.IsLowLevel():
		return KindLowLevel
	case u.IsPullServer():
		return KindPull
	default:
		return KindPush
	}
}

// TagExpression returns the RocketMQ tag filter: "*" when tags are absent,
// empty, or contain "*"; else the non-blank tags (trimmed) joined with
// "||".
func (u *UpstreamTopic) TagExpression() string {
	var tags []string
	for _, t := range u.Tags {
		t = strings.TrimSpace(t)
		if t == TagAll {
			return TagAll
		}
		if t != "" {
			tags = append(tags, t)
		}
	}
	if len(tags) == 0 {
		return TagAll
	}
	return strings.Join(tags, "||")
}

// EffectiveMaxConsumeLag returns the lag limit per queue: concurrency × 3
// for 0, -1 (unlimited) for any negative value, else the value.
func (u *UpstreamTopic) EffectiveMaxConsumeLag() int64 {
	switch {
	case u.MaxConsumeLag == 0:
		return int64(u.Concurrency) * 3
	case u.MaxConsumeLag < 0:
		return -1
	default:
		return u.MaxConsumeLag
	}
}

// Method returns httpMethod in upper case, POST when empty.
func (u *UpstreamTopic) Method() string {
	if u.HTTPMethod == "" {
		return HTTPMethodPost
	}
	return strings.ToUpper(u.HTTPMethod)
}

// OrderKind classifies orderKey.
func (u *UpstreamTopic) OrderKind() OrderKind {
	switch u.OrderKey {
	case "":
		return OrderNone
	case OrderByQID:
		return OrderQID
	case OrderByKey:
		return OrderKey
	default:
		return OrderJSONPath
	}
}

// jsonBeforeAsync reports whether a Json action precedes the first
// Async/NonBlockAsync (needed to order by a JsonPath).
func (u *UpstreamTopic) jsonBeforeAsync() bool {
	for _, a := range u.Actions {
		switch a {
		case ActionJSON:
			return true
		case ActionAsync, ActionNonBlockAsync:
			return false
		}
	}
	return false
}

// DLQEnabled reports whether dropped/failed messages go to
// deadLetterTopic (deadLetterPolicy "dlq").
func (u *UpstreamTopic) DLQEnabled() bool {
	return strings.EqualFold(u.DeadLetterPolicy, DeadLetterDLQ) && u.DeadLetterTopic != ""
}

// EffectiveDeadLetterPolicy returns "drop" or "dlq".
func (u *UpstreamTopic) EffectiveDeadLetterPolicy() string {
	if u.DLQEnabled() {
		return DeadLetterDLQ
	}
	return DeadLetterDrop
}

// ListsProxyIn reports whether instance is in the proxies set of
// proxyCluster (only that entry counts, §5.11).
func (u *UpstreamTopic) ListsProxyIn(proxyCluster, instance string) bool {
	for _, p := range u.Proxies[proxyCluster] {
		if p == instance {
			return true
		}
	}
	return false
}

// ---- JsonPath syntax ----

// ValidateJSONPath checks the syntax of a JsonPath as used by orderKey,
// queryParams and transit. Accepted (Jayway-compatible subset):
//
//   - a root "$" followed by segments; a path without "$" is read as
//     "$." + path (Jayway does the same), e.g. "orderId";
//   - ".name", "..name", ".*", "..*" (names are any characters other than
//     '.', '[', and whitespace);
//   - bracket segments: ['name'] / ["name"] (comma lists allowed, backslash
//     escapes inside quotes), [n] / [n,m] (negative allowed), slices
//     [a:b] with optional bounds, [*], and filters [?(...)] with balanced
//     parentheses (checked syntactically only).
func ValidateJSONPath(path string) error {
	if path == "" {
		return fmt.Errorf("empty path")
	}
	rest := path
	switch {
	case strings.HasPrefix(path, "$"):
		rest = path[1:]
	case strings.HasPrefix(path, "["), strings.HasPrefix(path, "."):
		return fmt.Errorf("path must start with $ or a property name")
	default:
		rest = "." + path
	}
	for rest != "" {
		switch rest[0] {
		case '.':
			rest = rest[1:]
			if strings.HasPrefix(rest, ".") { // deep scan
				rest = rest[1:]
				if strings.HasPrefix(rest, "[") {
					continue
				}
			}
			if rest == "" {
				return fmt.Errorf("path ends with '.'")
			}
			if rest[0] == '*' {
				rest = rest[1:]
				continue
			}
			n := strings.IndexAny(rest, ".[ \t\r\n")
			if n < 0 {
				n = len(rest)
			}
			if n == 0 {
				return fmt.Errorf("empty property name")
			}
			rest = rest[n:]
		case '[':
			end, err := bracketEnd(rest)
			if err != nil {
				return err
			}
			if err := validBracket(strings.TrimSpace(rest[1:end])); err != nil {
				return err
			}
			rest = rest[end+1:]
		default:
			return fmt.Errorf("unexpected %q", rest[0])
		}
	}
	return nil
}

// bracketEnd returns the index of the ']' closing s[0] == '[', skipping
// quoted strings and parenthesised filter expressions.
func bracketEnd(s string) (int, error) {
	depth := 0
	var quote byte
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '(':
			depth++
		case c == ')':
			if depth == 0 {
				return 0, fmt.Errorf("unbalanced ')'")
			}
			depth--
		case c == ']' && depth == 0:
			return i, nil
		}
	}
	return 0, fmt.Errorf("unterminated '['")
}

var (
	indexListRE = regexp.MustCompile(`^-?\d+(\s*,\s*-?\d+)*$`)
	sliceRE     = regexp.MustCompile(`^(-?\d+)?\s*:\s*(-?\d+)?(\s*:\s*\d+)?$`)
)

// validBracket checks the content of a bracket segment.
func validBracket(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("empty []")
	case s == "*":
		return nil
	case strings.HasPrefix(s, "?"):
		f := strings.TrimSpace(s[1:])
		if len(f) < 3 || f[0] != '(' || f[len(f)-1] != ')' {
			return fmt.Errorf("filter must be [?(...)]")
		}
		return nil
	case s[0] == '\'' || s[0] == '"':
		return validQuotedList(s)
	case indexListRE.MatchString(s), sliceRE.MatchString(s) && s != ":":
		return nil
	default:
		return fmt.Errorf("invalid [%s]", s)
	}
}

// validQuotedList accepts 'a' or 'a','b' (single or double quotes).
func validQuotedList(s string) error {
	for {
		if s == "" || (s[0] != '\'' && s[0] != '"') {
			return fmt.Errorf("expected a quoted name")
		}
		q := s[0]
		i := 1
		for ; i < len(s) && s[i] != q; i++ {
			if s[i] == '\\' {
				i++
			}
		}
		if i >= len(s) {
			return fmt.Errorf("unterminated quote")
		}
		s = strings.TrimSpace(s[i+1:])
		if s == "" {
			return nil
		}
		if s[0] != ',' {
			return fmt.Errorf("expected ',' between quoted names")
		}
		s = strings.TrimSpace(s[1:])
	}
}
