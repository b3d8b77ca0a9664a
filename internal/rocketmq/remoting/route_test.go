package remoting

import "testing"

func TestQuoteNumericKeys(t *testing.T) {
	cases := map[string]string{
		`{"a":1}`:                            `{"a":1}`,
		`{0:"x", 12 : "y"}`:                  `{"0":"x", "12" : "y"}`,
		`{"s":"{0:1}","m":{-1:[1,2,{3:4}]}}`: `{"s":"{0:1}","m":{"-1":[1,2,{"3":4}]}}`,
		`[1,{2:3},4]`:                        `[1,{"2":3},4]`,
		`{"e":"a\"b{1:2}"}`:                  `{"e":"a\"b{1:2}"}`,
	}
	for in, want := range cases {
		if got := string(quoteNumericKeys([]byte(in))); got != want {
			t.Errorf("quoteNumericKeys(%s) = %s, want %s", in, got, want)
		}
	}
}
