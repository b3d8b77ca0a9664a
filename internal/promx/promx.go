// Package promx is the one way this project registers Prometheus
// collectors: several instances of a component (two engines of one group,
// a producer rebuilt by a hot reload, every consumer member of a cluster)
// share one registerer, and the second registration of the same metric must
// hand back the first collector instead of failing.
package promx

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c with reg and returns it, or returns the collector
// of the same description that is already registered. For any other
// refusal it returns c unregistered (the caller's metrics still count,
// unexported) and the error. A nil reg registers nothing.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if reg == nil {
		return c, nil
	}
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}
