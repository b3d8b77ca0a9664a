// Package contract holds the proxy-level contract suite (issue 4): one set
// of end-to-end cases, written once, run unchanged against every broker
// technology the proxies support — Kafka (kfake) and RocketMQ (the
// project's test broker with two broker names). Each backend gets its own
// stack of ZooKeeper nodes, pproxy and cproxy (both in-process, spoken to
// only through the real Thrift clients); the backend fixtures differ only
// in the broker they start, the cluster JSON of the pproxy and cproxy
// nodes, and the QID pattern.
//
// The package has no non-test code; run it with
//
//	go test -race ./internal/contract/
package contract
