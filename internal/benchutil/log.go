package benchutil

import (
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// program prefixes the log lines and names clients ("benchproduce", ...).
var program = "bench"

// SetProgram sets the name used in log lines and client IDs.
func SetProgram(name string) { program = name }

// Logf writes a time-stamped progress line to stderr.
func Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s %s: %s\n", program, time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// MustJSON marshals v (a node literal) or panics.
func MustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
