package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

const (
	toolsModule = "github.com/opencontainers/runtime-tools"
	ourModule   = "github.com/vxn-runtime/vxn/tests/conformance"
	manifest    = "suite.json"
)

// suite is a built copy of the runtime-tools validation suite: one
// directory holding runtimetest, the busybox rootfs tarball and one
// binary per validation program. The programs run with this directory as
// their cwd: they copy ./runtimetest into every bundle and untar
// ./rootfs-$GOARCH.tar.gz into it (validation/util PrepareBundle and
// RuntimeInsideValidate).
type suite struct {
	Dir      string   `json:"-"`
	Module   string   `json:"module"`  // runtime-tools module path
	Version  string   `json:"version"` // runtime-tools version
	Source   string   `json:"-"`       // its directory in the module cache
	GoArch   string   `json:"goarch"`
	Programs []string `json:"programs"` // validation program names, sorted
}

func (s *suite) program(name string) string { return filepath.Join(s.Dir, "validation", name) }

// loadSuite reads the manifest of a suite built earlier.
func loadSuite(dir string) (*suite, error) {
	b, err := os.ReadFile(filepath.Join(dir, manifest))
	if err != nil {
		return nil, err
	}
	s := &suite{Dir: dir}
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, manifest), err)
	}
	if s.GoArch != runtime.GOARCH {
		return nil, fmt.Errorf("suite in %s is for %s, not %s", dir, s.GoArch, runtime.GOARCH)
	}
	need := []string{"runtimetest", rootfsTarball()}
	for _, p := range s.Programs {
		need = append(need, filepath.Join("validation", p))
	}
	for _, f := range need {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return nil, fmt.Errorf("incomplete suite in %s: %w", dir, err)
		}
	}
	return s, nil
}

func rootfsTarball() string { return fmt.Sprintf("rootfs-%s.tar.gz", runtime.GOARCH) }

// findModule locates this module's directory (the one whose go.mod pins
// runtime-tools): -module, else tests/conformance below the cwd or one of
// its parents, else the cwd or one of its parents.
func findModule(flagDir string) (string, error) {
	isOurs := func(dir string) bool {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		return err == nil && bytes.Contains(b, []byte("module "+ourModule+"\n"))
	}
	if flagDir != "" {
		if !isOurs(flagDir) {
			return "", fmt.Errorf("-module %s: no go.mod of %s there", flagDir, ourModule)
		}
		return filepath.Abs(flagDir)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		for _, c := range []string{filepath.Join(d, "tests", "conformance"), d} {
			if isOurs(c) {
				return c, nil
			}
		}
		if d == filepath.Dir(d) {
			break
		}
	}
	return "", fmt.Errorf("cannot find the %s module from %s: run from the vxn repository or pass -module", ourModule, wd)
}

// buildSuite builds runtimetest and every validation program of the
// runtime-tools version that this module's go.mod requires, from the
// module cache, into dir.
func buildSuite(modDir, dir string, log io.Writer) (*suite, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("the suite is built with the go command: %w", err)
	}
	run := func(env []string, args ...string) ([]byte, error) {
		cmd := exec.Command(goBin, args...)
		cmd.Dir = modDir
		cmd.Env = append(os.Environ(), env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
		}
		return out, nil
	}
	out, err := run(nil, "list", "-m", "-json", toolsModule)
	if err != nil {
		return nil, err
	}
	var mod struct{ Path, Version, Dir string }
	if err := json.Unmarshal(out, &mod); err != nil {
		return nil, fmt.Errorf("go list -m -json %s: %w", toolsModule, err)
	}
	if mod.Dir == "" {
		if _, err := run(nil, "mod", "download", toolsModule); err != nil {
			return nil, err
		}
		if out, err = run(nil, "list", "-m", "-json", toolsModule); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
			return nil, fmt.Errorf("%s@%s is not in the module cache", toolsModule, mod.Version)
		}
	}
	s := &suite{Dir: dir, Module: mod.Path, Version: mod.Version, Source: mod.Dir, GoArch: runtime.GOARCH}

	// The validation programs: every main package under validation/.
	out, err = run(nil, "list", "-f", "{{if eq .Name \"main\"}}{{.ImportPath}}{{end}}", toolsModule+"/validation/...")
	if err != nil {
		return nil, err
	}
	var pkgs []string
	for _, l := range strings.Fields(string(out)) {
		pkgs = append(pkgs, l)
		s.Programs = append(s.Programs, filepath.Base(l))
	}
	if len(pkgs) == 0 {
		return nil, errors.New("no validation programs found in " + mod.Dir)
	}
	sort.Strings(s.Programs)

	if err := os.RemoveAll(filepath.Join(dir, "validation")); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "validation"), 0o755); err != nil {
		return nil, err
	}
	// runtimetest runs inside the container, whose rootfs is busybox
	// without a libc: it must be static.
	static := []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=" + runtime.GOARCH}
	fmt.Fprintf(log, "building %s@%s runtimetest and %d validation programs into %s\n", mod.Path, mod.Version, len(pkgs), dir)
	if _, err := run(static, "build", "-o", filepath.Join(dir, "runtimetest"), toolsModule+"/cmd/runtimetest"); err != nil {
		return nil, err
	}
	if _, err := run(static, append([]string{"build", "-o", filepath.Join(dir, "validation") + "/"}, pkgs...)...); err != nil {
		return nil, err
	}
	if err := copyFile(filepath.Join(mod.Dir, rootfsTarball()), filepath.Join(dir, rootfsTarball()), 0o644); err != nil {
		return nil, fmt.Errorf("the suite's busybox rootfs: %w", err)
	}
	b, _ := json.MarshalIndent(s, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, manifest), append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	return s, nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}
