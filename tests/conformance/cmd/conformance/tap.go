package main

import (
	"bufio"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// tapResult is what one test program reported on stdout.
type tapResult struct {
	OK      int  `json:"ok"`      // "ok" points without a SKIP/TODO directive
	NotOK   int  `json:"notok"`   // "not ok" points (without TODO), plus synthetic ones, see below
	Skip    int  `json:"skip"`    // points with a SKIP or TODO directive
	Plan    int  `json:"plan"`    // the "1..N" plan; -1 when none was printed
	Bailout bool `json:"bailout"` // "Bail out!"
	// Points is the number of test points printed (ok + not ok + skip
	// before the synthetic ones are added).
	Points int `json:"points"`
	// Failed lists the descriptions of the "not ok" points, in order.
	Failed []string `json:"failed,omitempty"`
	// Passed lists the descriptions of the "ok" points (not skipped).
	Passed []string `json:"-"`
}

var (
	tapPoint = regexp.MustCompile(`^(not )?ok\b\s*(\d+)?\s*(?:-\s*)?(.*)$`)
	tapPlan  = regexp.MustCompile(`^1\.\.(\d+)`)
)

// parseTAP reads a TAP stream. Only lines that start in column 0 count:
// the validation programs embed the TAP of runtimetest (run inside the
// container) in indented YAML diagnostics, and those lines must not be
// counted twice.
func parseTAP(r io.Reader) tapResult {
	res := tapResult{Plan: -1}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if m := tapPlan.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[1])
			res.Plan = n
			continue
		}
		if strings.HasPrefix(line, "Bail out!") {
			res.Bailout = true
			continue
		}
		m := tapPoint.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		res.Points++
		desc, directive := m[3], ""
		if i := strings.Index(desc, "#"); i >= 0 {
			directive = strings.ToUpper(strings.TrimSpace(desc[i+1:]))
			if d := strings.TrimSpace(desc[:i]); d != "" {
				desc = d
			} else {
				desc = strings.TrimSpace(desc[i+1:])
			}
		}
		switch {
		case strings.HasPrefix(directive, "SKIP"), strings.HasPrefix(directive, "TODO"):
			res.Skip++
		case m[1] == "":
			res.OK++
			res.Passed = append(res.Passed, desc)
		default:
			res.NotOK++
			res.Failed = append(res.Failed, desc)
		}
	}
	return res
}

// complete reports whether the stream printed every point of its plan.
func (t tapResult) complete() bool {
	return t.Plan >= 0 && t.Points >= t.Plan && !t.Bailout
}
