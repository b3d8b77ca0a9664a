package delayid

import (
	"math"
	"sort"
	"testing"
)

const uuid = "9e7952e0-b709-11e8-a709-aafb4bfc0bc5"

func TestParseRoundTrip(t *testing.T) {
	for _, s := range []string{
		"1507609164-2-1507781964-0-0-0-0-14f22520-ad72-11e7-91be-6ee54da579e3",
		"1536811267-3-1536911267-3-0-10-0-" + uuid,
		"1536811267-4-1536911267-3-2-300-7-" + uuid,
		"1536811267-0-1536911267-3-2-300-7-" + uuid,
	} {
		id, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q): %v", s, err)
		}
		if got := id.String(); got != s {
			t.Fatalf("round trip %q → %q", s, got)
		}
	}
	id, _ := Parse("1536811267-3-1536911267-3-0-10-0-" + uuid)
	want := ID{Timestamp: 1536811267, Type: Loop, Expire: 1536911267, Times: 3, Timed: 0, Interval: 10, Seq: 0, UUID: uuid}
	if id != want {
		t.Fatalf("fields %+v", id)
	}
}

func TestParseRejects(t *testing.T) {
	for name, s := range map[string]string{
		"empty":             "",
		"seven fields":      "1536811267-3-1536911267-3-0-10-0",
		"nine digit ts":     "153681126-3-1536911267-3-0-10-0-" + uuid,
		"eleven digit ts":   "15368112670-3-1536911267-3-0-10-0-" + uuid,
		"two digit type":    "1536811267-33-1536911267-3-0-10-0-" + uuid,
		"sign":              "1536811267-3-+1536911267-3-0-10-0-" + uuid,
		"negative":          "1536811267-3-1536911267--3-0-10-0-" + uuid,
		"overflow":          "1536811267-3-1536911267-99999999999999999999-0-10-0-" + uuid,
		"empty field":       "1536811267-3--3-0-10-0-" + uuid,
		"uppercase uuid":    "1536811267-3-1536911267-3-0-10-0-9E7952E0-B709-11E8-A709-AAFB4BFC0BC5",
		"short uuid":        "1536811267-3-1536911267-3-0-10-0-9e7952e0",
		"segment suffix":    "1536811267-3-1536911267-3-0-10-0-" + uuid + "-2-1",
		"non-ascii in uuid": "1536811267-3-1536911267-3-0-10-0-9e7952e0-b709-11e8-a709-aafb4bfc0bcé",
	} {
		if _, err := Parse(s); err == nil {
			t.Errorf("%s: Parse(%q) accepted", name, s)
		}
	}
}

func TestKeysSortByTimeTombstonesFirst(t *testing.T) {
	mk := func(ts int64, typ Type) string {
		return ID{Timestamp: ts, Type: typ, Expire: ts + 100, Times: 3, Interval: 5, UUID: uuid}.String()
	}
	keys := []string{mk(1700000001, Delay), mk(1700000000, Loop), mk(1700000001, Tombstone),
		mk(1700000000, Tombstone), mk(1699999999, LoopExponent), mk(1700000000, Delay)}
	sort.Strings(keys)
	want := []string{mk(1699999999, LoopExponent), mk(1700000000, Tombstone), mk(1700000000, Delay),
		mk(1700000000, Loop), mk(1700000001, Tombstone), mk(1700000001, Delay)}
	for i := range keys {
		if keys[i] != want[i] {
			t.Fatalf("order %v, want %v", keys, want)
		}
	}
	p := SecondPrefix(1700000000)
	if p != "1700000000-" || mk(1700000000, Loop)[:len(p)] != p {
		t.Fatalf("prefix %q", p)
	}
}

func TestLoopArithmetic(t *testing.T) {
	const T = 1_700_000_000
	cases := []struct {
		name  string
		id    ID
		times []int64 // expected fire times of every valid occurrence
	}{
		{"loop every 10s, 3 times", ID{Timestamp: T, Type: Loop, Expire: T + 1000, Times: 3, Interval: 10},
			[]int64{T, T + 10, T + 20}},
		{"loop cut by expire", ID{Timestamp: T, Type: Loop, Expire: T + 25, Times: 100, Interval: 10},
			[]int64{T, T + 10, T + 20}},
		{"loop expire inclusive", ID{Timestamp: T, Type: Loop, Expire: T + 20, Times: 100, Interval: 10},
			[]int64{T, T + 10, T + 20}},
		{"exponent base 300 (spec example)", ID{Timestamp: T, Type: LoopExponent, Expire: T + 10*86400, Times: 4, Interval: 300},
			[]int64{T, T + 300, T + 300 + 86400, T + 300 + 2*86400}},
		{"exponent base 2", ID{Timestamp: T, Type: LoopExponent, Expire: T + 100000, Times: 5, Interval: 2},
			[]int64{T, T + 2, T + 2 + 4, T + 2 + 4 + 8, T + 2 + 4 + 8 + 16}},
		{"exponent huge base overflows to the cap", ID{Timestamp: T, Type: LoopExponent, Expire: T + 3*86400, Times: 10, Interval: math.MaxInt64},
			[]int64{T, T + 86400, T + 2*86400, T + 3*86400}},
		{"loop huge interval overflows past expire", ID{Timestamp: T, Type: Loop, Expire: MaxTimestamp, Times: 10, Interval: math.MaxInt64},
			[]int64{T}},
		{"single delivery", ID{Timestamp: T, Type: Loop, Expire: T + 1, Times: 1, Interval: 3}, []int64{T}},
		{"zero interval never advances", ID{Timestamp: T, Type: Loop, Expire: T + 100, Times: 1000, Interval: 0}, []int64{T}},
		{"exponent base 1 steps one second", ID{Timestamp: T, Type: LoopExponent, Expire: T + 100, Times: 3, Interval: 1}, []int64{T, T + 1, T + 2}},
		{"exponent base 0 never advances", ID{Timestamp: T, Type: LoopExponent, Expire: T + 100, Times: 1000, Interval: 0}, []int64{T}},
		{"delay has no next", ID{Timestamp: T, Type: Delay, Expire: T + 172800}, []int64{T}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []int64
			occ, ok := c.id, c.id.Valid()
			for i := 0; ok && i < 100; i++ {
				got = append(got, occ.Timestamp)
				if occ.Timed != int64(i) {
					t.Fatalf("occurrence %d has timed %d", i, occ.Timed)
				}
				occ, ok = occ.Next()
			}
			if len(got) != len(c.times) {
				t.Fatalf("fire times %v, want %v", got, c.times)
			}
			for i := range got {
				if got[i] != c.times[i] {
					t.Fatalf("fire times %v, want %v", got, c.times)
				}
			}
		})
	}
}

func TestFirstAfter(t *testing.T) {
	const T = 1_700_000_000
	loop := ID{Timestamp: T, Type: Loop, Expire: T + 1000, Times: 50, Interval: 10}
	exp := ID{Timestamp: T, Type: LoopExponent, Expire: T + 10*86400, Times: 50, Interval: 2}
	cases := []struct {
		name       string
		id         ID
		sec        int64
		wantTS     int64
		wantTimed  int64
		wantPassed int64
		wantValid  bool
	}{
		{"already after", loop, T - 1, T, 0, 0, true},
		{"on the second", loop, T, T + 10, 1, 1, true},
		{"between", loop, T + 25, T + 30, 3, 3, true},
		{"exactly on a later one", loop, T + 30, T + 40, 4, 4, true},
		{"past times", ID{Timestamp: T, Type: Loop, Expire: T + 1000, Times: 3, Interval: 10}, T + 100, T + 110, 11, 11, false},
		{"past expire", loop, T + 1000, T + 1010, 101, 101, false},
		{"exponent", exp, T + 2 + 4 + 1, T + 2 + 4 + 8, 3, 3, true},
		{"delay after", ID{Timestamp: T, Type: Delay}, T - 1, T, 0, 0, true},
		{"delay due", ID{Timestamp: T, Type: Delay}, T, T, 0, 0, false},
		{"huge interval", ID{Timestamp: T, Type: Loop, Expire: MaxTimestamp, Times: 5, Interval: math.MaxInt64}, T, MaxTimestamp + 1, 1, 1, false},
		{"zero interval", ID{Timestamp: T, Type: Loop, Expire: MaxTimestamp, Times: 5}, T, T, 0, 0, false},
	}
	for _, c := range cases {
		got, passed, valid := c.id.FirstAfter(c.sec)
		if valid != c.wantValid || got.Timestamp != c.wantTS || (valid && got.Timed != c.wantTimed) || passed != c.wantPassed {
			t.Errorf("%s: FirstAfter = %+v passed %d valid %v", c.name, got, passed, valid)
		}
		// Agrees with walking Next.
		if c.id.IsLoop() && c.wantValid {
			occ, ok := c.id, true
			for ok && occ.Timestamp <= c.sec {
				occ, ok = occ.Next()
			}
			if !ok || occ != got {
				t.Errorf("%s: walk gives %+v %v", c.name, occ, ok)
			}
		}
	}
}

func TestExponentStep(t *testing.T) {
	cases := []struct{ base, exp, want int64 }{
		{2, 0, 1}, {2, 1, 2}, {2, 10, 1024}, {2, 16, 65536}, {2, 17, 86400}, {2, 1000, 86400},
		{300, 1, 300}, {300, 2, 86400}, {293, 2, 85849}, {294, 2, 86400},
		{86400, 1, 86400}, {86401, 1, 86400}, {math.MaxInt64, 1, 86400}, {math.MaxInt64, math.MaxInt64, 86400},
		{1, 100, 1}, {0, 3, 0}, {-5, 3, 0},
	}
	for _, c := range cases {
		if got := ExponentStep(c.base, c.exp); got != c.want {
			t.Errorf("ExponentStep(%d, %d) = %d, want %d", c.base, c.exp, got, c.want)
		}
	}
}

func TestValid(t *testing.T) {
	const T = 1_700_000_000
	cases := []struct {
		name string
		id   ID
		want bool
	}{
		{"delay", ID{Timestamp: T, Type: Delay}, true},
		{"loop first", ID{Timestamp: T, Type: Loop, Expire: T + 1, Times: 1}, true},
		{"loop all fired", ID{Timestamp: T, Type: Loop, Expire: T + 1, Times: 1, Timed: 1}, false},
		{"loop after expire", ID{Timestamp: T + 2, Type: Loop, Expire: T + 1, Times: 5}, false},
		{"nine digits", ID{Timestamp: 999_999_999, Type: Delay}, false},
		{"eleven digits", ID{Timestamp: MaxTimestamp + 1, Type: Delay}, false},
	}
	for _, c := range cases {
		if got := c.id.Valid(); got != c.want {
			t.Errorf("%s: Valid = %v", c.name, got)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("1507609164-2-1507781964-0-0-0-0-14f22520-ad72-11e7-91be-6ee54da579e3")
	f.Add("1536811267-4-1536911267-3-2-300-7-" + uuid)
	f.Add("0000000000-0-0-0-0-0-0-000000000000000000000000000000000000")
	f.Add("--------")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := Parse(s)
		if err != nil {
			return
		}
		// Canonical form parses to the same id and keeps the 10-digit prefix.
		c := id.String()
		id2, err := Parse(c)
		if err != nil || id2 != id || c[:10] != s[:10] {
			t.Fatalf("%q → %q → %+v, %v", s, c, id2, err)
		}
		// Next never loops forever and always moves forward.
		occ, ok := id, true
		for i := 0; ok && i < 50; i++ {
			next, valid := occ.Next()
			if valid && next.Timestamp <= occ.Timestamp {
				t.Fatalf("Next did not advance: %+v → %+v", occ, next)
			}
			occ, ok = next, valid
		}
	})
}
