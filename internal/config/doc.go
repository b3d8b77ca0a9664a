// Package config holds the typed configuration of the proxies: the local
// bootstrap file (conf/carrera.yaml) and the JSON nodes the DDMQ console
// writes into ZooKeeper (zookeeper-layout.md §1 and §4), together with their
// defaults, validation and the pproxy routing snapshot built from them.
//
// The package is pure: every parser takes []byte, nothing here talks to
// ZooKeeper (that is internal/zkconf). All parsed values are treated as
// immutable once built; a configuration change produces new values.
//
// JSON conventions (zookeeper-layout.md §3): keys are matched
// case-insensitively (encoding/json does that), unknown keys are ignored, a
// missing key means "default", and fields that DDMQ types as double are
// float64 here so that both 1000 and 1000.0 load.
package config
