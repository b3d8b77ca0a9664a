package pproxy

import (
	"math"
	"strings"
	"testing"

	"github.com/ddmq-go/carrera/internal/javastr"
)

func TestInnerSeqNeverNegative(t *testing.T) {
	for _, h := range []int64{0, 1, -1, 7, -7, math.MinInt32, math.MaxInt32, math.MinInt64, math.MaxInt64} {
		for _, n := range []int{1, 2, 3, 10} {
			if s := innerSeq(h, n); s < 0 || s >= n {
				t.Fatalf("innerSeq(%d, %d) = %d", h, n, s)
			}
		}
	}
	// Floor modulo, not |x| mod n: -1 mod 3 = 2.
	if s := innerSeq(-1, 3); s != 2 {
		t.Fatalf("innerSeq(-1, 3) = %d, want 2", s)
	}
}

func FuzzValidateCancel(f *testing.F) {
	f.Add("1507609164-2-1507781964-0-0-0-0-14f22520-ad72-11e7-91be-6ee54da579e3", 1)
	f.Add("1536811267-3-1536911267-3-0-10-99999999999999999999-9e7952e0-b709-11e8-a709-aafb4bfc0bc5", 4)
	f.Add("", 1)
	f.Add("-------", 3)
	f.Fuzz(func(t *testing.T, id string, n int) {
		if n <= 0 || n > 1<<20 {
			return
		}
		hash, seq, code := validateCancel(id, n)
		if code != OK {
			return
		}
		if seq < 0 || seq >= n {
			t.Fatalf("accepted seq %d of %d", seq, n)
		}
		parts := strings.SplitN(id, "-", 8)
		if len(parts) != 8 || int64(javastr.HashCode(parts[7])) != hash {
			t.Fatalf("hash mismatch for %q", id)
		}
	})
}
