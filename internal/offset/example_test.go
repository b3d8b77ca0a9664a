package offset_test

import (
	"fmt"

	"github.com/ddmq-go/carrera/internal/offset"
)

// A partition committed at 100 hands out 100..104; 101, 102 and 104 are
// acknowledged, 100 and 103 are still in flight when the process dies. The
// restarted tracker skips the acknowledged ones instead of redelivering
// them.
func Example() {
	tr := offset.New(100)
	for o := int64(100); o < 105; o++ {
		tr.Start(o)
	}
	tr.Done(101)
	tr.Done(102)
	tr.Done(104)
	committed, meta := tr.Committable(), tr.Metadata()
	fmt.Println("commit", committed, meta, "in flight", tr.InFlight())

	// Restart: the broker redelivers from the committed offset.
	tr, err := offset.Decode(committed, meta)
	if err != nil {
		tr = offset.New(committed) // foreign or stale metadata: redeliver all
	}
	for o := int64(100); o < 105; o++ {
		fmt.Println(o, "deliver:", tr.Start(o))
	}
	tr.Done(100)
	tr.Done(103)
	fmt.Println("commit", tr.Committable(), fmt.Sprintf("%q", tr.Metadata()))
	// Output:
	// commit 100 ot1:D40100 in flight 2
	// 100 deliver: true
	// 101 deliver: false
	// 102 deliver: false
	// 103 deliver: true
	// 104 deliver: false
	// commit 105 ""
}
