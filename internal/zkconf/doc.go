// Package zkconf is the ZooKeeper-backed configuration source of the
// proxies (zookeeper-layout.md §7 and §9).
//
// Two layers:
//
//   - Watcher is generic: it keeps data watches on single nodes (re-armed
//     after every event, re-created after a session expiry), mirrors every
//     node it reads into an on-disk last-known-good cache
//     (<cacheDir>/<zkPath>/<dataVersion>), serves reads from that cache while
//     ZooKeeper is unreachable, and reports changes to one Handler. It talks
//     to ZooKeeper through the small Conn interface so that tests can drive
//     it with a fake.
//   - PProxySource builds on it: it reads /pproxy/<instance> and the
//     /topic/<t> nodes of the white list and static topics, rebuilds a
//     complete config.PProxySnapshot on every change, swaps it atomically
//     and notifies subscribers. Invalid data is logged and counted and the
//     previous snapshot stays in force.
//
// Goroutines: Start spawns them (the watcher loop, one small forwarder per
// armed watch, and go-zookeeper's own), Close stops them and waits; Close is
// idempotent. All handler and subscriber callbacks run serially on the
// watcher loop goroutine.
package zkconf
