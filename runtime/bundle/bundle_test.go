package bundle

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// newBundle makes a bundle directory with the given config.json and, when
// rootfs is set, an empty rootfs directory.
func newBundle(t *testing.T, config []byte, rootfs bool) string {
	t.Helper()
	dir := t.TempDir()
	if rootfs {
		if err := os.Mkdir(filepath.Join(dir, "rootfs"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), config, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// minimalSpec is a small valid config, for the cases to break.
func minimalSpec() *specs.Spec {
	return &specs.Spec{
		Version:  "1.0.2-dev",
		Root:     &specs.Root{Path: "rootfs"},
		Hostname: "box",
		Process: &specs.Process{
			Args:    []string{"sh"},
			Cwd:     "/",
			Env:     []string{"PATH=/bin", "EMPTY="},
			Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 4096}},
			Capabilities: &specs.LinuxCapabilities{
				Bounding: []string{"CAP_KILL"},
				Ambient:  []string{"CAP_NET_RAW"},
			},
		},
		Mounts: []specs.Mount{{Destination: "/proc", Type: "proc", Source: "proc"}},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{{Type: "pid"}, {Type: "uts"}, {Type: "network", Path: "/run/netns/x"}},
			Sysctl:     map[string]string{"net.ipv4.ip_forward": "1"},
			Devices:    []specs.LinuxDevice{{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229}},
		},
		Hooks: &specs.Hooks{
			Prestart: []specs.Hook{{Path: "/usr/bin/hook", Timeout: new(5)}},
		},
	}
}

func mustMarshal(t *testing.T, s *specs.Spec) []byte {
	t.Helper()
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestLoadValid(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*specs.Spec)
	}{
		{"minimal", func(*specs.Spec) {}},
		{"release version", func(s *specs.Spec) { s.Version = "1.3.0" }},
		{"prerelease and build", func(s *specs.Spec) { s.Version = "1.2.3-rc.1+build.5" }},
		{"build only", func(s *specs.Spec) { s.Version = "1.0.0+20130313144700" }},
		{"no hostname without uts", func(s *specs.Spec) { s.Hostname = ""; s.Linux.Namespaces = nil }},
		{"no linux", func(s *specs.Spec) { s.Hostname = ""; s.Linux = nil }},
		{"no hooks", func(s *specs.Spec) { s.Hooks = nil }},
		{"terminal with console size", func(s *specs.Spec) {
			s.Process.Terminal = true
			s.Process.ConsoleSize = &specs.Box{Height: 24, Width: 80}
		}},
		{"user and labels", func(s *specs.Spec) {
			s.Process.User = specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{10}}
			s.Process.ApparmorProfile = "docker-default"
			s.Process.SelinuxLabel = "system_u:system_r:container_t:s0"
		}},
		{"soft equals hard", func(s *specs.Spec) { s.Process.Rlimits[0].Soft = 4096 }},
		{"domainname with uts", func(s *specs.Spec) { s.Domainname = "example.org" }},
		{"every namespace type", func(s *specs.Spec) {
			s.Linux.Namespaces = nil
			for _, t := range namespaceTypes {
				s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: t})
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := minimalSpec()
			tt.mutate(s)
			dir := newBundle(t, mustMarshal(t, s), true)
			b, err := Load(dir)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if b.Dir != dir || b.Rootfs != filepath.Join(dir, "rootfs") {
				t.Errorf("Dir, Rootfs = %q, %q; want %q, %q", b.Dir, b.Rootfs, dir, filepath.Join(dir, "rootfs"))
			}
		})
	}
}

func TestLoadInvalid(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*specs.Spec)
		want   string
	}{
		{"ociVersion missing", func(s *specs.Spec) { s.Version = "" },
			`ociVersion: missing; set it to the runtime-spec version the config follows, e.g. "1.3.0"`},
		{"ociVersion not semver", func(s *specs.Spec) { s.Version = "1.0" },
			`ociVersion: "1.0" is not a semantic version; write it as 1.MINOR.PATCH`},
		{"ociVersion leading zero", func(s *specs.Spec) { s.Version = "1.01.0" },
			`ociVersion: "1.01.0" is not a semantic version`},
		{"ociVersion major 2", func(s *specs.Spec) { s.Version = "2.0.0" },
			`ociVersion: "2.0.0" is not supported; vxn runs runtime-spec 1.x configs`},
		{"root missing", func(s *specs.Spec) { s.Root = nil },
			`root: missing; set root.path to the root filesystem directory`},
		{"root.path empty", func(s *specs.Spec) { s.Root.Path = "" },
			`root.path: empty; set it to the root filesystem directory`},
		{"process missing", func(s *specs.Spec) { s.Process = nil },
			`process: missing; create needs the process to run`},
		{"args empty", func(s *specs.Spec) { s.Process.Args = nil },
			`process.args: empty; set the command to run`},
		{"cwd empty", func(s *specs.Spec) { s.Process.Cwd = "" },
			`process.cwd: empty; set the working directory inside the container`},
		{"cwd relative", func(s *specs.Spec) { s.Process.Cwd = "home" },
			`process.cwd: "home" is not an absolute path`},
		{"env without =", func(s *specs.Spec) { s.Process.Env = append(s.Process.Env, "FOO") },
			`process.env[2]: "FOO" has no '='; write it as NAME=value`},
		{"env empty name", func(s *specs.Spec) { s.Process.Env = []string{"=x"} },
			`process.env[0]: "=x" has an empty name`},
		{"env NUL", func(s *specs.Spec) { s.Process.Env = []string{"A=b\x00c"} },
			`process.env[0]: "A=b\x00c" contains a NUL byte`},
		{"rlimit unknown", func(s *specs.Spec) { s.Process.Rlimits[0].Type = "RLIMIT_FOO" },
			`process.rlimits[0].type: unknown rlimit "RLIMIT_FOO"; use one of RLIMIT_AS, RLIMIT_CORE,`},
		{"rlimit lower case", func(s *specs.Spec) { s.Process.Rlimits[0].Type = "nofile" },
			`process.rlimits[0].type: unknown rlimit "nofile"`},
		{"rlimit soft above hard", func(s *specs.Spec) { s.Process.Rlimits[0].Soft = 8192 },
			`process.rlimits[0]: RLIMIT_NOFILE soft limit 8192 is above its hard limit 4096; lower soft or raise hard`},
		{"rlimit duplicate", func(s *specs.Spec) {
			s.Process.Rlimits = append(s.Process.Rlimits, specs.POSIXRlimit{Type: "RLIMIT_NPROC"}, s.Process.Rlimits[0])
		}, `process.rlimits[2].type: RLIMIT_NOFILE is set twice (also process.rlimits[0]); keep one`},
		{"capability unknown", func(s *specs.Spec) {
			s.Process.Capabilities.Bounding = append(s.Process.Capabilities.Bounding, "CAP_FOO")
		},
			`process.capabilities.bounding[1]: unknown capability "CAP_FOO"; use a CAP_* name from capabilities(7)`},
		{"capability without prefix", func(s *specs.Spec) { s.Process.Capabilities.Ambient = []string{"NET_RAW"} },
			`process.capabilities.ambient[0]: unknown capability "NET_RAW"`},
		{"hostname without uts", func(s *specs.Spec) { s.Linux.Namespaces = s.Linux.Namespaces[:1] },
			`hostname: unable to set hostname without a private UTS namespace; add {"type": "uts"} to linux.namespaces or remove hostname`},
		{"hostname without linux", func(s *specs.Spec) { s.Linux = nil },
			`hostname: unable to set hostname without a private UTS namespace`},
		{"domainname without uts", func(s *specs.Spec) {
			s.Hostname, s.Domainname, s.Linux.Namespaces = "", "example.org", nil
		}, `domainname: unable to set domainname without a private UTS namespace; add {"type": "uts"} to linux.namespaces or remove domainname`},
		{"mount destination relative", func(s *specs.Spec) { s.Mounts = append(s.Mounts, specs.Mount{Destination: "data", Type: "bind"}) },
			`mounts[1].destination: "data" is not an absolute path; give the absolute path inside the container`},
		{"mount destination empty", func(s *specs.Spec) { s.Mounts[0].Destination = "" },
			`mounts[0].destination: "" is not an absolute path`},
		{"namespace unknown", func(s *specs.Spec) { s.Linux.Namespaces[0].Type = "net" },
			`linux.namespaces[0].type: unknown namespace type "net"; use one of pid, network, mount, ipc, uts, user, cgroup, time`},
		{"namespace duplicate", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "pid"})
		}, `linux.namespaces[3].type: "pid" is listed twice (also linux.namespaces[0]); keep one`},
		{"namespace path relative", func(s *specs.Spec) { s.Linux.Namespaces[2].Path = "netns" },
			`linux.namespaces[2].path: "netns" is not an absolute path`},
		{"sysctl empty key", func(s *specs.Spec) { s.Linux.Sysctl[""] = "1" },
			`linux.sysctl: empty key (with value "1"); remove it`},
		{"device type", func(s *specs.Spec) { s.Linux.Devices[0].Type = "x" },
			`linux.devices[0].type: "x" is not a device type; use c (character), b (block), u (unbuffered character) or p (FIFO)`},
		{"device path relative", func(s *specs.Spec) { s.Linux.Devices[0].Path = "dev/fuse" },
			`linux.devices[0].path: "dev/fuse" is not an absolute path`},
		{"hook path relative", func(s *specs.Spec) {
			s.Hooks.CreateRuntime = []specs.Hook{{Path: "/bin/true"}, {Path: "hook"}}
		}, `hooks.createRuntime[1].path: "hook" is not an absolute path; give the hook program's absolute path`},
		{"hook timeout zero", func(s *specs.Spec) { s.Hooks.Poststop = []specs.Hook{{Path: "/bin/true", Timeout: new(0)}} },
			`hooks.poststop[0].timeout: 0 is not a positive number of seconds; raise it or remove timeout`},
		{"hook timeout negative", func(s *specs.Spec) { s.Hooks.Prestart[0].Timeout = new(-1) },
			`hooks.prestart[0].timeout: -1 is not a positive number of seconds`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := minimalSpec()
			tt.mutate(s)
			dir := newBundle(t, mustMarshal(t, s), true)
			b, err := Load(dir)
			if err == nil {
				t.Fatalf("Load = %+v, want error %q", b, tt.want)
			}
			checkInvalid(t, err, "bundle "+dir+": config.json: "+tt.want)
		})
	}
}

// checkInvalid checks that err wraps ErrInvalid and its text contains want.
func checkInvalid(t *testing.T, err error, want string) {
	t.Helper()
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("error %q does not wrap ErrInvalid", err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error\n  %s\ndoes not contain\n  %s", err, want)
	}
}

func TestLoadJSONErrors(t *testing.T) {
	tests := []struct {
		name   string
		config string
		want   string
	}{
		{"syntax", "{\n  \"ociVersion\": \"1.0.0\",\n  \"process\": {\"args\": [\"sh\",]}\n}",
			`config.json:3:29: invalid character ']' looking for beginning of value; fix the JSON`},
		{"truncated", "{\n  \"ociVersion\": \"1.0.0\",\n",
			`config.json:2:25: unexpected end of JSON input; fix the JSON`},
		{"empty", "",
			`config.json:1:1: unexpected end of JSON input`},
		{"wrong type", "{\n  \"ociVersion\": \"1.0.0\",\n  \"process\": {\"args\": \"sh\"}\n}",
			`config.json:3:26: process.args: got a JSON string, want []string; fix the JSON`},
		{"wrong element type", "{\"process\": {\"rlimits\": [{\"type\": \"RLIMIT_CORE\", \"hard\": -1}]}}",
			`config.json:1:59: process.rlimits.hard: got a JSON number -1, want uint64`},
		{"top level", "[]",
			`config.json:1:1: (top level): got a JSON array, want specs.Spec`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := newBundle(t, []byte(tt.config), true)
			_, err := Load(dir)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			checkInvalid(t, err, "bundle "+dir+": "+tt.want)
		})
	}
}

func TestLoadUnknownFieldsIgnored(t *testing.T) {
	config := `{"ociVersion": "1.0.0", "vxnFuture": {"a": [1, 2]}, "root": {"path": "rootfs", "future": true},
		"process": {"args": ["sh"], "cwd": "/", "future": "x"}}`
	if _, err := Load(newBundle(t, []byte(config), true)); err != nil {
		t.Fatal(err)
	}
}

func TestLoadMissingConfig(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(dir)
	if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrInvalid) {
		t.Errorf("error %q: want fs.ErrNotExist, not ErrInvalid", err)
	}
	want := "bundle " + dir + ": open config.json: no such file or directory (is --bundle right?)"
	if err == nil || err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}

func TestLoadRootfs(t *testing.T) {
	t.Run("missing", func(t *testing.T) {
		dir := newBundle(t, mustMarshal(t, minimalSpec()), false)
		_, err := Load(dir)
		checkInvalid(t, err, "bundle "+dir+": config.json: root.path: "+dir+"/rootfs does not exist; create the root filesystem there or fix root.path")
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("error %q does not wrap fs.ErrNotExist", err)
		}
	})
	t.Run("not a directory", func(t *testing.T) {
		dir := newBundle(t, mustMarshal(t, minimalSpec()), false)
		if err := os.WriteFile(filepath.Join(dir, "rootfs"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(dir)
		checkInvalid(t, err, "root.path: "+dir+"/rootfs is not a directory; root.path must name the root filesystem directory")
	})
	t.Run("absolute", func(t *testing.T) {
		rootfs := t.TempDir()
		s := minimalSpec()
		s.Root.Path = rootfs + "/./"
		b, err := Load(newBundle(t, mustMarshal(t, s), false))
		if err != nil {
			t.Fatal(err)
		}
		if b.Rootfs != rootfs {
			t.Errorf("Rootfs = %q, want %q", b.Rootfs, rootfs)
		}
	})
	t.Run("relative bundle dir", func(t *testing.T) {
		dir := newBundle(t, mustMarshal(t, minimalSpec()), true)
		t.Chdir(filepath.Dir(dir))
		s := minimalSpec()
		s.Root.Path = "x/../rootfs"
		if err := os.WriteFile(filepath.Join(dir, ConfigFile), mustMarshal(t, s), 0o644); err != nil {
			t.Fatal(err)
		}
		b, err := Load(filepath.Base(dir))
		if err != nil {
			t.Fatal(err)
		}
		if b.Dir != dir || b.Rootfs != filepath.Join(dir, "rootfs") {
			t.Errorf("Dir, Rootfs = %q, %q; want %q, %q", b.Dir, b.Rootfs, dir, filepath.Join(dir, "rootfs"))
		}
	})
}

func TestLoadPodmanConfig(t *testing.T) {
	tmpl, err := os.ReadFile("testdata/podman.json")
	if err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(t.TempDir(), "overlay", "l1", "merged")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := newBundle(t, []byte(strings.ReplaceAll(string(tmpl), "@ROOTFS@", rootfs)), false)
	b, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if b.Rootfs != rootfs {
		t.Errorf("Rootfs = %q, want %q", b.Rootfs, rootfs)
	}
	s := b.Spec
	if s.Hostname != "0123456789ab" || len(s.Process.Capabilities.Bounding) != 11 || len(s.Mounts) != 13 ||
		s.Linux.Namespaces[1].Path == "" || s.Annotations["io.container.manager"] != "libpod" || s.Hooks != nil {
		t.Errorf("config not loaded as written: %+v", s)
	}
}

func TestDefaultSpecLoads(t *testing.T) {
	dir := newBundle(t, mustMarshal(t, DefaultSpec()), true)
	b, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := b.Spec
	if s.Version != specs.Version || !s.Root.Readonly || !s.Process.Terminal || s.Hostname != "vxn" ||
		len(s.Mounts) != 7 || len(s.Linux.Namespaces) != 6 || !s.Process.NoNewPrivileges {
		t.Errorf("DefaultSpec round trip: %+v", s)
	}
	// Each call returns its own copy.
	DefaultSpec().Process.Capabilities.Bounding[0] = "changed"
	if DefaultSpec().Process.Capabilities.Bounding[0] != "CAP_AUDIT_WRITE" {
		t.Error("DefaultSpec shares state between calls")
	}
}

func TestValidateProcess(t *testing.T) {
	ok := &specs.Process{Args: []string{"ps"}, Cwd: "/", Env: []string{"A=1"}}
	if err := ValidateProcess(ok); err != nil {
		t.Errorf("ValidateProcess(valid) = %v", err)
	}
	checkInvalid(t, ValidateProcess(nil), "no process given")
	checkInvalid(t, ValidateProcess(&specs.Process{Cwd: "/"}), `args: empty; set the command to run`)
	bad := &specs.Process{Args: []string{"ps"}, Cwd: "/", Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_X"}}}
	err := ValidateProcess(bad)
	checkInvalid(t, err, `rlimits[0].type: unknown rlimit "RLIMIT_X"`)
	if strings.Contains(err.Error(), "process.") {
		t.Errorf("error %q names process. fields for an exec process", err)
	}
}

func TestLookups(t *testing.T) {
	if n, ok := Capability("CAP_SYS_ADMIN"); !ok || n != unix.CAP_SYS_ADMIN {
		t.Errorf("Capability(CAP_SYS_ADMIN) = %d, %v", n, ok)
	}
	if n, ok := Capability("CAP_CHECKPOINT_RESTORE"); !ok || n != unix.CAP_LAST_CAP {
		t.Errorf("Capability(CAP_CHECKPOINT_RESTORE) = %d, %v", n, ok)
	}
	if len(capabilities) != unix.CAP_LAST_CAP+1 {
		t.Errorf("%d capabilities, want %d", len(capabilities), unix.CAP_LAST_CAP+1)
	}
	if _, ok := Capability("CAP_NOPE"); ok {
		t.Error("Capability(CAP_NOPE) found")
	}
	if n, ok := Rlimit("RLIMIT_NOFILE"); !ok || n != unix.RLIMIT_NOFILE {
		t.Errorf("Rlimit(RLIMIT_NOFILE) = %d, %v", n, ok)
	}
	if _, ok := Rlimit("NOFILE"); ok {
		t.Error("Rlimit(NOFILE) found")
	}
}
