package main

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
)

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+=./:,@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// sanePath is the start of the command's PATH in dom0; the host's PATH
// entries follow (the host root is visible in dom0).
const sanePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func validEnvName(k string) bool {
	if k == "" || (k[0] >= '0' && k[0] <= '9') {
		return false
	}
	for _, c := range k {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// commandEnv is the environment of the command in dom0: a fixed base,
// PATH extended by the host's PATH entries, then the -env settings
// ("K=V", or "K" to pass the host's value of K through).
func commandEnv(hostPath, results string, settings []string, lookup func(string) (string, bool)) (map[string]string, error) {
	seen := map[string]bool{}
	var path []string
	for _, p := range append(strings.Split(sanePath, ":"), strings.Split(hostPath, ":")...) {
		if strings.HasPrefix(p, "/") && !seen[p] {
			seen[p] = true
			path = append(path, p)
		}
	}
	env := map[string]string{
		"PATH":          strings.Join(path, ":"),
		"HOME":          "/root",
		"USER":          "root",
		"LOGNAME":       "root",
		"SHELL":         "/bin/sh",
		"TERM":          "dumb",
		"LANG":          "C.UTF-8",
		"XENVM":         "1",
		"XENVM_RESULTS": results,
	}
	for _, s := range settings {
		k, v, ok := strings.Cut(s, "=")
		if !validEnvName(k) {
			return nil, fmt.Errorf("-env %q: %q is not a valid variable name", s, k)
		}
		if !ok {
			if v, ok = lookup(k); !ok {
				return nil, fmt.Errorf("-env %s: not set on the host", k)
			}
		}
		env[k] = v
	}
	return env, nil
}

// commandScript is cmd.sh: run by /bin/sh in dom0 with an empty
// environment, it sets the environment, changes to dir and execs argv.
func commandScript(dir string, env map[string]string, argv []string) string {
	var b strings.Builder
	b.WriteString("# written by tests/xenvm\n")
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "export %s=%s\n", k, shellQuote(env[k]))
	}
	fmt.Fprintf(&b, "cd %s || exit 125\n", shellQuote(dir))
	b.WriteString("exec")
	for _, a := range argv {
		b.WriteString(" " + shellQuote(a))
	}
	b.WriteString("\n")
	return b.String()
}

// guestConfig is what the dom0 init reads from the results share.
type guestConfig struct {
	Results   string   // absolute host path of the results dir, mounted at the same path in dom0
	Tmpfs     []string // directories that get a fresh tmpfs in dom0
	GuestLogs bool     // xenconsoled logs guest consoles into Results/xenconsoled
	RootCache string   // 9p cache mode of the host root ("" = kernel default)
}

func (c guestConfig) script() string {
	var b strings.Builder
	b.WriteString("# written by tests/xenvm, read by the dom0 init\n")
	fmt.Fprintf(&b, "XENVM_RESULTS=%s\n", shellQuote(c.Results))
	fmt.Fprintf(&b, "XENVM_TMPFS=%s\n", shellQuote(strings.Join(c.Tmpfs, " ")))
	gl := "0"
	if c.GuestLogs {
		gl = "1"
	}
	fmt.Fprintf(&b, "XENVM_GUEST_LOGS=%s\n", gl)
	fmt.Fprintf(&b, "XENVM_ROOT_CACHE=%s\n", shellQuote(c.RootCache))
	return b.String()
}

// under reports whether p is dir or below it.
func under(p, dir string) bool {
	p, dir = filepath.Clean(p), filepath.Clean(dir)
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// freshTmpfs picks which of the candidate directories get a fresh tmpfs
// in dom0. A directory that holds one of the paths the command refers to
// (its cwd, absolute arguments, absolute -env values) keeps the host's
// contents (through the writable overlay) so those paths stay visible;
// kept lists why.
func freshTmpfs(cands []string, used []string) (fresh []string, kept []string) {
	for _, d := range cands {
		var why string
		for _, p := range used {
			if strings.HasPrefix(p, "/") && under(p, d) {
				why = p
				break
			}
		}
		if why == "" {
			fresh = append(fresh, d)
		} else {
			kept = append(kept, fmt.Sprintf("%s (for %s)", d, why))
		}
	}
	return fresh, kept
}
