package benchutil

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// MainOptions are the flags every benchmark command shares.
type MainOptions struct {
	// Keep is -keep: the temporary directory is kept (a failure then does
	// not suggest -keep).
	Keep bool
	// KeepWhat names what -keep keeps, for the failure hint ("the logs").
	KeepWhat string
	// JSONPath is -json: where the report is also written ("" = nowhere).
	JSONPath string
}

// Main is the outline of a benchmark command once its flags are parsed. It
// cancels the run's context on SIGINT, SIGTERM or SIGHUP (a second signal
// gets the default action; the children then die with this process), runs
// bench with a cleanup stack, stops everything on the stack before
// printing, prints the report with print and writes it as indented JSON to
// o.JSONPath when set. It returns the exit status: 0, 1 (harness failure or
// JSON not written) or 130 (interrupted).
func Main[R any](o MainOptions, bench func(ctx context.Context, cl *Cleanups) (R, error), print func(io.Writer, R)) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		sig := <-sigc
		signal.Stop(sigc)
		Logf("%v: stopping and cleaning up (send it again to die at once)", sig)
		cancel()
	}()

	var cl Cleanups
	defer cl.Run()
	rep, err := bench(ctx, &cl)
	cl.Run() // stop the stack before printing
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, program+": interrupted")
			return 130
		}
		fmt.Fprintln(os.Stderr, program+": HARNESS FAILURE:", err)
		if !o.Keep {
			fmt.Fprintln(os.Stderr, program+": rerun with -keep to keep "+o.KeepWhat)
		}
		return 1
	}
	fmt.Println()
	print(os.Stdout, rep)
	if o.JSONPath != "" {
		if err := WriteJSON(o.JSONPath, rep); err != nil {
			fmt.Fprintln(os.Stderr, program+": writing JSON:", err)
			return 1
		}
		fmt.Printf("\nJSON results written to %s\n", o.JSONPath)
	}
	return 0
}

// WriteJSON writes v as indented JSON (with a final newline) to path.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
