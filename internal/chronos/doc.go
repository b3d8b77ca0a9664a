// Package chronos is the Chronos-style delay service (behaviour.md §3): it
// consumes the delay inner topic through cproxy (Thrift pull with
// piggy-backed acknowledgements), keeps pending occurrences in an embedded
// on-disk store keyed by fire time (package store), and re-sends each due
// occurrence through pproxy (Thrift sendSync, property from_chronos) — so it
// works over every backend the proxies support.
//
// Goroutines (all owned by Run and stopped in its shutdown order):
//
//	pullers (threadNum)   pull → Engine.Ingest → ack with the next pull
//	seek loop (1)         Engine.RunSeek: one second at a time
//	send workers (batchSendThreadNum)  one pproxy connection each
//	elector, meta (1 each, unless standAlone)  ZooKeeper election and progress
//	retention (1)         Engine.RunRetention
//
// The only shared lock is Engine.mu (ingestion: read; horizon advance:
// write) and role.mu (a leaf).
package chronos
