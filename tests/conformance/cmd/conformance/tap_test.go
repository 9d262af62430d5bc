package main

import (
	"strings"
	"testing"
)

func TestParseTAP(t *testing.T) {
	in := `TAP version 13
ok 1 - create MUST generate an error if the ID is not provided
  ---
  {
    "stdout": "TAP version 13\nok 1 - inner\nnot ok 2 - inner\n"
  }
  ...
not ok 2 - create MUST create a new container
  ---
  stdout: |
    not ok 1 - indented, not counted
  ...
ok 3 # SKIP no cgroup v1
ok 4 # skip lower case
not ok 5 # TODO later
ok 6
1..6
`
	got := parseTAP(strings.NewReader(in))
	if got.OK != 2 || got.NotOK != 1 || got.Skip != 3 || got.Plan != 6 || got.Points != 6 || !got.complete() {
		t.Fatalf("got %+v", got)
	}
	if len(got.Failed) != 1 || got.Failed[0] != "create MUST create a new container" {
		t.Fatalf("failed = %q", got.Failed)
	}
}

func TestParseTAPIncomplete(t *testing.T) {
	got := parseTAP(strings.NewReader("TAP version 13\n1..3\nok 1 - a\n"))
	if got.complete() || got.Plan != 3 || got.OK != 1 {
		t.Fatalf("got %+v", got)
	}
	got = parseTAP(strings.NewReader("TAP version 13\nok 1 - a\n"))
	if got.complete() || got.Plan != -1 {
		t.Fatalf("no plan: got %+v", got)
	}
	got = parseTAP(strings.NewReader("1..0 # SKIP nothing to do\n"))
	if !got.complete() || got.Plan != 0 {
		t.Fatalf("empty plan: got %+v", got)
	}
}

func TestSettle(t *testing.T) {
	cases := []struct {
		name     string
		tap      string
		exit     int
		timedOut bool
		notok    int
		verdict  string
	}{
		{"pass", "1..2\nok 1\nok 2\n", 0, false, 0, verdictPass},
		{"fail", "1..2\nok 1\nnot ok 2\n", 0, false, 1, verdictFail},
		{"fail and exit 1", "1..2\nok 1\nnot ok 2\n", 1, false, 1, verdictError},
		{"fatal before plan", "TAP version 13\n", 1, false, 1, verdictError},
		{"fatal after empty plan", "TAP version 13\n1..0\n", 1, false, 1, verdictError},
		{"missing points", "1..4\nok 1\n", 1, false, 3, verdictError},
		{"missing points exit 0", "1..4\nok 1\n", 0, false, 3, verdictError},
		{"no plan exit 0", "ok 1\n", 0, false, 1, verdictError},
		{"timeout", "TAP version 13\nok 1\n", -1, true, 1, verdictTimeout},
		{"timeout with plan", "1..3\nok 1\n", -1, true, 2, verdictTimeout},
		{"skip", "TAP version 13\n1..1\nok 1 # SKIP x\n", 0, false, 0, verdictSkip},
		{"complete but exit 1", "1..1\nok 1\n", 1, false, 1, verdictError},
		{"silent", "", 0, false, 0, verdictSilent},
		{"silent with empty plan", "TAP version 13\n1..0\n", 0, false, 0, verdictSilent},
	}
	for _, c := range cases {
		r := settle(parseTAP(strings.NewReader(c.tap)), c.exit, c.timedOut)
		if r.NotOK != c.notok || r.Verdict != c.verdict {
			t.Errorf("%s: notok=%d verdict=%s, want %d %s", c.name, r.NotOK, r.Verdict, c.notok, c.verdict)
		}
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	if got := unescapeMountinfo(`/tmp/a\040b\134c`); got != `/tmp/a b\c` {
		t.Fatalf("got %q", got)
	}
	if got := unescapeMountinfo(`/tmp/x\04`); got != `/tmp/x\04` {
		t.Fatalf("short escape: got %q", got)
	}
}
