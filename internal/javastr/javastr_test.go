package javastr

import "testing"

func TestHashCode(t *testing.T) {
	// Values computed by hand from the Java definition h = 31*h + c.
	cases := []struct {
		name string
		in   string
		want int32
	}{
		{"empty", "", 0},
		{"a", "a", 97},
		{"ab", "ab", 97*31 + 98},
		{"hello", "hello", 99162322},
		// Overflow wraps: "polygenelubricants" is the classic Java MIN_VALUE hash.
		{"min value", "polygenelubricants", -2147483648},
		// A supplementary character hashes as its two surrogates.
		{"surrogates", "\U0001F600", 31*0xD83D + 0xDE00},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := HashCode(c.in); got != c.want {
				t.Fatalf("HashCode(%q) = %d, want %d", c.in, got, c.want)
			}
		})
	}
}

func TestLen(t *testing.T) {
	cases := map[string]int{"": 0, "abc": 3, "é": 1, "日本": 2, "\U0001F600": 2}
	for in, want := range cases {
		if got := Len(in); got != want {
			t.Errorf("Len(%q) = %d, want %d", in, got, want)
		}
	}
}

func BenchmarkHashCodeUUID(b *testing.B) {
	s := "3f0c1a2e-5b7d-4c1e-9a2b-7d1e0f9c8b6a"
	for b.Loop() {
		_ = HashCode(s)
	}
}
