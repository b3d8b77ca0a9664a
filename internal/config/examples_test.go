package config

// The worked examples of zookeeper-layout.md §10, verbatim. They must load
// as is.

const exampleTopicOrderCreated = `{
  "topic": "order_created",
  "alarmGroup": ["oncall-orders"],
  "topicUnits": [
    {"brokerCluster": "R_default",
     "proxies": {"P_ddmq": ["10.0.0.11:9613", "10.0.0.12:9613"]},
     "totalMaxTps": 2000, "maxTps": 1000}
  ],
  "delayTopic": false, "autoBatch": true, "strongOrder": false,
  "compressType": "PRIMORDIAL", "limiterFailureRetryInterval": -1
}`

const exampleTopicClicks = `{
  "topic": "clicks",
  "topicUnits": [
    {"brokerCluster": "K_main", "proxies": {"P_ddmq": ["10.0.0.11:9613"]},
     "totalMaxTps": 5000, "maxTps": 5000}
  ],
  "delayTopic": false, "autoBatch": false, "strongOrder": true,
  "limiterFailureRetryInterval": 0
}`

const exampleTopicOrderTimeout = `{
  "topic": "order_timeout",
  "topicUnits": [
    {"brokerCluster": "R_default",
     "proxies": {"P_ddmq": ["10.0.0.11:9613", "10.0.0.12:9613"]},
     "totalMaxTps": 500, "maxTps": 250}
  ],
  "delayTopic": true, "autoBatch": false, "strongOrder": false,
  "limiterFailureRetryInterval": -1
}`

const exampleTopicInner0 = `{
  "topic": "R_test_chronos_inner_0",
  "topicUnits": [
    {"brokerCluster": "R_default",
     "proxies": {"P_ddmq": ["10.0.0.11:9613", "10.0.0.12:9613"]},
     "totalMaxTps": 2000, "maxTps": 1000}
  ],
  "delayTopic": false, "autoBatch": false, "strongOrder": false
}`

const examplePProxy = `{
  "instance": "10.0.0.11:9613",
  "proxyCluster": "P_ddmq",
  "brokerClusters": ["R_default", "K_main"],
  "topics": ["order_created", "clicks", "order_timeout", "R_test_chronos_inner_0"],
  "carreraConfiguration": {
    "retryDelays": [200, 500, 1000],
    "useKafka": true, "useRocketmq": true, "useRequestLimiter": true,
    "rocketmqProducers": 3, "kafkaProducers": 2,
    "thriftServer": {"selectorThreads": 8, "workerThreads": 0, "acceptQueueSizePerThread": 100,
                     "maxReadBufferBytes": 5000000, "backlog": 50, "clientTimeout": 0,
                     "workerQueueSize": 20000, "timeoutCheckerThreads": 3, "port": 9613},
    "rocketmqConfigurationMap": {
      "R_default": {"namesrvAddrs": ["10.0.1.1:9876", "10.0.1.2:9876"],
                    "groupPrefix": "carrera_rocketmq_producer_", "sendMsgTimeout": 3000,
                    "compressMsgBodyOverHowmuch": 4096, "retryTimesWhenSendFailed": 0,
                    "retryAnotherBrokerWhenNotStoreOK": false, "maxMessageSize": 2097152,
                    "clientCallbackExecutorThreads": 4, "pollNameServerInterval": 2000,
                    "heartbeatBrokerInterval": 10000, "persistConsumerOffsetInterval": 5000}
    },
    "kafkaConfigurationMap": {
      "K_main": {"bootstrapServers": ["10.0.1.6:9092", "10.0.1.7:9092"], "acks": "all",
                 "retries": 0, "batchSize": 16384, "clientId": "pproxy", "retryBackoff": 100,
                 "metadataMaxAge": 300000, "metadataFetchTimeout": 5000, "ackTimeout": 3000,
                 "bufferMemory": 33554432}
    },
    "delay": {"innerTopicNum": 1, "chronosInnerTopicPrefix": "R_test_chronos_inner_"},
    "useAutoBatch": true,
    "autoBatch": {"maxBathBytes": 4096, "doBatchThresholdBytes": 1024, "maxBatchMessagesNumber": 32,
                  "encodeWorkerThreads": 4, "maxEncodeWorkerForEachBroker": 1,
                  "batchWaitMills": 5, "maxContinuouslyRunningMills": 50},
    "warmUpConnection": false, "warmUpFetchTopicRouteInfo": true,
    "maxTps": 30000, "tpsWarningRatio": 0.8,
    "limiterFailureRetryQueueSize": 1024,
    "defaultTopicInfoConf": {"topics": []}
  }
}`

// minimalPProxy is the smallest valid node: RocketMQ only, everything else
// defaulted.
const minimalPProxy = `{
  "instance": "127.0.0.1:9613", "proxyCluster": "P_test", "brokerClusters": ["R_default"],
  "carreraConfiguration": {
    "useRocketmq": true, "rocketmqProducers": 1,
    "thriftServer": {"selectorThreads": 1, "acceptQueueSizePerThread": 1,
                     "maxReadBufferBytes": 5000000, "backlog": 50, "timeoutCheckerThreads": 1},
    "rocketmqConfigurationMap": {
      "R_default": {"namesrvAddrs": ["127.0.0.1:9876"], "compressMsgBodyOverHowmuch": 4096,
                    "maxMessageSize": 4194304, "clientCallbackExecutorThreads": 1,
                    "pollNameServerInterval": 2000, "heartbeatBrokerInterval": 10000,
                    "persistConsumerOffsetInterval": 5000}
    }
  }
}`
