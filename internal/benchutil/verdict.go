package benchutil

import (
	"fmt"
	"io"
	"runtime"
	"time"
)

// Verdict is one target of a benchmark and whether the run met it.
type Verdict struct {
	Target string `json:"target"`
	Actual string `json:"actual"`
	Met    bool   `json:"met"`
}

// PrintVerdicts writes one line per verdict ("[ OK   ]" or "[MISSED]") and
// a summary line.
func PrintVerdicts(w io.Writer, vs []Verdict) {
	missed := 0
	for _, v := range vs {
		tag := "[ OK   ]"
		if !v.Met {
			tag = "[MISSED]"
			missed++
		}
		fmt.Fprintf(w, "  %s %s: %s\n", tag, v.Target, v.Actual)
	}
	if missed > 0 {
		fmt.Fprintf(w, "  => %d of %d targets MISSED\n", missed, len(vs))
	} else {
		fmt.Fprintf(w, "  => all %d targets met\n", len(vs))
	}
}

// RunInfo heads every bench's JSON report: what ran, where, when.
type RunInfo struct {
	Backend      string    `json:"backend"`
	Started      time.Time `json:"started"`
	GoVersion    string    `json:"goVersion"`
	CPUs         int       `json:"cpus"`
	MessageBytes int       `json:"messageBytes"`
	Partitions   int       `json:"partitions"`
}

// NewRunInfo describes a run starting now on this machine.
func NewRunInfo(backend string, messageBytes, partitions int) RunInfo {
	return RunInfo{Backend: backend, Started: time.Now().UTC(), GoVersion: runtime.Version(), CPUs: runtime.NumCPU(),
		MessageBytes: messageBytes, Partitions: partitions}
}
