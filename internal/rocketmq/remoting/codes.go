package remoting

// Request codes (RocketMQ RequestCode). The names follow test-environment.md
// §3.3; the comments say who sends them.
const (
	SendMessage                   int16 = 10  // producer → broker: single message
	PullMessage                   int16 = 11  // consumer → broker
	QueryMessage                  int16 = 12  // never sent by rocketmq-client-go v2.1.2
	QueryConsumerOffset           int16 = 14  // consumer → broker; 22 when the group has no offset
	UpdateConsumerOffset          int16 = 15  // consumer → broker (the Go client sends it "oneway")
	CreateTopic                   int16 = 17  // admin → broker
	SearchOffsetByTimestamp       int16 = 29  // consumer → broker
	GetMaxOffset                  int16 = 30  // consumer → broker
	GetMinOffset                  int16 = 31  // this project's own client → broker
	ViewMessageByID               int16 = 33  // never sent by v2.1.2
	HeartBeat                     int16 = 34  // client → broker
	UnregisterClient              int16 = 35  // client → broker: a member leaves (Java clients; v2.1.2 never sends it)
	ConsumerSendMsgBack           int16 = 36  // push consumer → broker: "consume later"
	EndTransaction                int16 = 37  // transactional producer → broker
	GetConsumerListByGroup        int16 = 38  // consumer → broker, on every rebalance
	CheckTransactionState         int16 = 39  // broker → client
	NotifyConsumerIDsChanged      int16 = 40  // broker → client: rebalance now
	LockBatchMQ                   int16 = 41  // orderly consumer → broker
	UnlockBatchMQ                 int16 = 42  // orderly consumer → broker
	GetRouteInfoByTopic           int16 = 105 // client → NameServer
	GetBrokerClusterInfo          int16 = 106 // never sent by v2.1.2
	GetAllSubscriptionGroupConfig int16 = 201 // admin → broker
	GetAllTopicListFromNameServer int16 = 206 // admin → NameServer
	DeleteTopicInBroker           int16 = 215 // admin → broker
	DeleteTopicInNameSrv          int16 = 216 // admin → NameServer
	ResetConsumerOffset           int16 = 220 // broker → client
	GetConsumerStatsFromClient    int16 = 221 // broker → client
	GetConsumerRunningInfo        int16 = 307 // broker → client
	ConsumeMessageDirectly        int16 = 309 // broker → client
	SendMessageV2                 int16 = 310 // never sent by v2.1.2
	SendBatchMessage              int16 = 320 // producer → broker: several messages, short header keys
	SendReplyMessage              int16 = 324 // request-reply producer → broker
	PushReplyMessageToClient      int16 = 326 // broker → client
)

// Response codes (RocketMQ ResponseCode).
const (
	Success                 int16 = 0
	SystemError             int16 = 1
	SystemBusy              int16 = 2
	RequestCodeNotSupported int16 = 3
	FlushDiskTimeout        int16 = 10 // a send status, not an error, for the Go client
	SlaveNotAvailable       int16 = 11 // a send status, not an error, for the Go client
	FlushSlaveTimeout       int16 = 12 // a send status, not an error, for the Go client
	MessageIllegal          int16 = 13
	ServiceNotAvailable     int16 = 14
	NoPermission            int16 = 16
	TopicNotExist           int16 = 17
	PullNotFound            int16 = 19 // nothing new after the long-poll hold
	PullRetryImmediately    int16 = 20
	PullOffsetMoved         int16 = 21 // requested offset outside the queue; ext nextBeginOffset corrects it
	QueryNotFound           int16 = 22 // no stored consumer offset
	SubscriptionNotExist    int16 = 24
	ConsumerNotOnline       int16 = 206
)

// Message sysFlag bits (stored messages and the sysFlag of a send).
const (
	FlagCompressed          int32 = 0x1
	FlagMultiTags           int32 = 0x2
	FlagTransactionPrepared int32 = 0x4
	FlagTransactionCommit   int32 = 0x8
	FlagBornHostV6          int32 = 0x10
	FlagStoreHostV6         int32 = 0x20
)

// PULL_MESSAGE sysFlag bits.
const (
	PullFlagCommitOffset int32 = 0x1
	PullFlagSuspend      int32 = 0x2
	PullFlagSubscription int32 = 0x4
	PullFlagClassFilter  int32 = 0x8
)

// Message property keys used by the broker and the clients.
const (
	PropertyTags             = "TAGS"
	PropertyKeys             = "KEYS"
	PropertyUniqKey          = "UNIQ_KEY"
	PropertyWaitStoreMsgOK   = "WAIT"
	PropertyDelayTimeLevel   = "DELAY"
	PropertyRetryTopic       = "RETRY_TOPIC"
	PropertyRealTopic        = "REAL_TOPIC"
	PropertyRealQueueID      = "REAL_QID"
	PropertyOriginMessageID  = "ORIGIN_MESSAGE_ID"
	PropertyReconsumeTime    = "RECONSUME_TIME"
	PropertyMaxReconsumeTime = "MAX_RECONSUME_TIMES"
	PropertyMinOffset        = "MIN_OFFSET"
	PropertyMaxOffset        = "MAX_OFFSET"
	PropertyTransactionPrep  = "TRAN_MSG"
	PropertyProducerGroup    = "PGROUP"
)

// Topic name prefixes and well-known topics.
const (
	RetryTopicPrefix = "%RETRY%" // %RETRY%<group>: a group's redeliveries
	DLQTopicPrefix   = "%DLQ%"   // %DLQ%<group>: messages past maxReconsumeTimes
	DefaultTopic     = "TBW102"  // the "create on send" template topic producers ask the NameServer for
)

// Permission bits of a queue ("perm" in routes and CREATE_TOPIC).
const (
	PermInherit = 0x1
	PermWrite   = 0x2
	PermRead    = 0x4
)
