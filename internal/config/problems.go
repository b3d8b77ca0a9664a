package config

import (
	"fmt"
	"strings"
)

// problems collects validation failures so that Validate can report every
// offending key at once instead of only the first one. Each entry names the
// key with its JSON path (e.g. "carreraConfiguration.thriftServer.backlog").
type problems struct {
	errs []error
}

func (p *problems) addf(format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf(format, args...))
}

// nest records the problems of a sub-object, prefixed with its path.
func (p *problems) nest(path string, err error) {
	if err == nil {
		return
	}
	// Only a direct multi-error is split; wrapped errors stay whole.
	if sub, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range sub.Unwrap() {
			p.errs = append(p.errs, fmt.Errorf("%s.%w", path, e))
		}
		return
	}
	p.errs = append(p.errs, fmt.Errorf("%s.%w", path, err))
}

// err returns nil, the single problem, or a ValidationError.
func (p *problems) err() error {
	switch len(p.errs) {
	case 0:
		return nil
	case 1:
		return p.errs[0]
	default:
		return &ValidationError{Problems: p.errs}
	}
}

// ValidationError lists several validation problems. Its message joins them
// with "; " so that it stays on one log line; errors.Is/As see each problem.
type ValidationError struct {
	Problems []error
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Error()
	}
	return strings.Join(parts, "; ")
}

// Unwrap returns the individual problems.
func (e *ValidationError) Unwrap() []error { return e.Problems }
