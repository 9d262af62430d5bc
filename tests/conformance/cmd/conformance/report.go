package main

import (
	"fmt"
	"strings"
)

// row is one test program: its result per runtime (nil: not run).
type row struct {
	Test string
	VXN  *result
	RunC *result
}

// clean reports whether a program ended without any failure.
func (r *result) clean() bool {
	return r.Verdict == verdictPass || r.Verdict == verdictSilent || r.Verdict == verdictSkip
}

// status compares vxn with runc on one program: first whether each ended
// without a failure, then by "ok" points.
func (r row) status() string {
	v, c := r.VXN, r.RunC
	switch {
	case v == nil || c == nil:
		return "-"
	case v.Verdict == c.Verdict && v.OK == c.OK && v.NotOK == c.NotOK && v.Skip == c.Skip:
		return "same"
	case v.clean() && !c.clean():
		return "vxn better"
	case !v.clean() && c.clean():
		return "VXN WORSE"
	case v.OK < c.OK:
		return "VXN WORSE"
	case v.OK > c.OK:
		return "vxn better"
	default:
		return "differs"
	}
}

// runcOnly lists, per program, the descriptions of the points runc
// passes and vxn does not (as multisets: a description may repeat).
func runcOnly(rows []row) map[string][]string {
	out := map[string][]string{}
	for _, r := range rows {
		if r.VXN == nil || r.RunC == nil {
			continue
		}
		have := map[string]int{}
		for _, d := range r.VXN.Passed {
			have[d]++
		}
		for _, d := range r.RunC.Passed {
			if have[d] > 0 {
				have[d]--
				continue
			}
			out[r.Test] = append(out[r.Test], d)
		}
	}
	return out
}

// runcOnlyText renders runcOnly, at most limit points per program (0:
// all of them).
func runcOnlyText(rows []row, limit int) string {
	diff := runcOnly(rows)
	if len(diff) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("points runc passes and vxn does not:\n")
	for _, r := range rows {
		pts := diff[r.Test]
		if len(pts) == 0 {
			continue
		}
		fmt.Fprintf(&b, "  %s (%d):\n", r.Test, len(pts))
		for i, p := range pts {
			if limit > 0 && i == limit {
				fmt.Fprintf(&b, "    ... %d more\n", len(pts)-limit)
				break
			}
			fmt.Fprintf(&b, "    %s\n", p)
		}
	}
	return b.String()
}

type totals struct {
	OK, NotOK, Skip, Programs, Passed, Silent int
}

func (t *totals) add(r *result) {
	if r == nil {
		return
	}
	t.OK += r.OK
	t.NotOK += r.NotOK
	t.Skip += r.Skip
	t.Programs++
	switch r.Verdict {
	case verdictPass, verdictSkip:
		t.Passed++
	case verdictSilent:
		t.Silent++
	}
}

func cells(r *result) []string {
	if r == nil {
		return []string{"-", "-", "-", "-", "-"}
	}
	v := r.Verdict
	if len(r.Leaked) > 0 {
		v += "+leak"
	}
	return []string{fmt.Sprint(r.OK), fmt.Sprint(r.NotOK), fmt.Sprint(r.Skip), v, fmt.Sprintf("%.0fs", r.Seconds)}
}

var header = []string{"test", "vxn ok", "notok", "skip", "result", "time", "runc ok", "notok", "skip", "result", "time", "status"}

func tableRows(rows []row) ([][]string, totals, totals) {
	var tv, tc totals
	var out [][]string
	for _, r := range rows {
		tv.add(r.VXN)
		tc.add(r.RunC)
		line := append([]string{r.Test}, cells(r.VXN)...)
		line = append(line, cells(r.RunC)...)
		out = append(out, append(line, r.status()))
	}
	return out, tv, tc
}

func totalCells(t totals, ran bool) []string {
	if !ran {
		return []string{"-", "-", "-", "-", ""}
	}
	return []string{fmt.Sprint(t.OK), fmt.Sprint(t.NotOK), fmt.Sprint(t.Skip), fmt.Sprintf("%d+%d/%d", t.Passed, t.Silent, t.Programs), ""}
}

// textTable renders the results as an aligned plain-text table.
func textTable(rows []row, vxnRan, runcRan bool) string {
	body, tv, tc := tableRows(rows)
	total := append([]string{"TOTAL"}, totalCells(tv, vxnRan)...)
	total = append(total, totalCells(tc, runcRan)...)
	total = append(total, "")
	all := append([][]string{header}, body...)
	all = append(all, total)
	width := make([]int, len(header))
	for _, l := range all {
		for i, c := range l {
			width[i] = max(width[i], len(c))
		}
	}
	var b strings.Builder
	for n, l := range all {
		if n == len(all)-1 {
			for i := range l {
				if i > 0 {
					b.WriteString("  ")
				}
				b.WriteString(strings.Repeat("-", width[i]))
			}
			b.WriteString("\n")
		}
		for i, c := range l {
			if i > 0 {
				b.WriteString("  ")
			}
			if i == 0 || i == len(l)-1 {
				fmt.Fprintf(&b, "%-*s", width[i], c)
			} else {
				fmt.Fprintf(&b, "%*s", width[i], c)
			}
		}
		b.WriteString("\n")
	}
	b.WriteString("(result totals: PASS+SILENT/PROGRAMS; pass: exit 0, the whole plan, no \"not ok\"; silent: exit 0 without a test point)\n")
	lines := strings.Split(b.String(), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(lines, "\n")
}

// markdownTable renders the same table for docs/conformance.md.
func markdownTable(rows []row, vxnRan, runcRan bool) string {
	body, tv, tc := tableRows(rows)
	total := append([]string{"**total**"}, totalCells(tv, vxnRan)...)
	total = append(total, totalCells(tc, runcRan)...)
	total = append(total, "")
	var b strings.Builder
	line := func(l []string) { b.WriteString("| " + strings.Join(l, " | ") + " |\n") }
	line(header)
	sep := make([]string, len(header))
	for i := range sep {
		sep[i] = "---:"
	}
	sep[0], sep[len(sep)-1] = "---", "---"
	line(sep)
	for _, l := range body {
		line(l)
	}
	line(total)
	return b.String()
}

// finalLine is the run's one-line summary, always the last line printed.
func finalLine(rows []row) string {
	_, tv, tc := tableRows(rows)
	return fmt.Sprintf("conformance: vxn ok=%d notok=%d, runc ok=%d notok=%d", tv.OK, tv.NotOK, tc.OK, tc.NotOK)
}
