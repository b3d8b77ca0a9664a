package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The demo's nodes double as valid fixtures.
func readDemo(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "conf", "demo", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestGroupAndCProxyPut(t *testing.T) {
	st := newFakeStore()
	group, cp := readDemo(t, "group-demo_pull.json"), readDemo(t, "cproxy.json")
	r := mustRun(t, st, "group", "put", writeFile(t, "g.json", group))
	if r.stdout != "/group/cg_demo_pull: created\n" || !strings.HasPrefix(st.data("/group/cg_demo_pull"), `{"group":"cg_demo_pull",`) {
		t.Fatalf("%+v %q", r, st.data("/group/cg_demo_pull"))
	}
	r = mustRun(t, st, "cproxy", "put", writeFile(t, "c.json", cp))
	if r.stdout != "/cproxy/127.0.0.1:9713: created\n" {
		t.Fatalf("%+v", r)
	}

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"group invalid", []string{"group", "put", writeFile(t, "g.json", `{"group":"g1","topics":[{"topic":"t","enabled":true}]}`)}, "invalid GroupConfig"},
		{"group no name", []string{"group", "put", writeFile(t, "g.json", `{"topics":[]}`)}, `bad group ""`},
		{"cproxy invalid", []string{"cproxy", "put", writeFile(t, "c.json", `{"instance":"1.2.3.4:9713"}`)}, "invalid CProxyConfig"},
		{"put-node group name mismatch", []string{"put-node", "/group/other", writeFile(t, "g.json", group)}, `group "cg_demo_pull" in the JSON differs from the node name "other"`},
		{"put-node cproxy name mismatch", []string{"put-node", "/cproxy/1.2.3.4:9713", writeFile(t, "c.json", cp)}, `differs from the node name "1.2.3.4:9713"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, st, tc.args...)
			if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("code %d stderr %q, want %q", r.code, r.stderr, tc.want)
			}
		})
	}
	for _, p := range []string{"/group/g1", "/group/other", "/cproxy/1.2.3.4:9713"} {
		if _, _, err := st.Get(p); err == nil {
			t.Errorf("invalid node %s written", p)
		}
	}
}
