package bundle

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// semver matches a semantic version (semver.org 2.0.0) with major version 1,
// prerelease and build suffixes allowed ("1.0.2-dev").
var semver = regexp.MustCompile(`^1\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)` +
	`(-(0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)(\.(0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*)?` +
	`(\+[0-9a-zA-Z-]+(\.[0-9a-zA-Z-]+)*)?$`)

// validate checks b.Spec and sets b.Rootfs. It returns the first problem.
func (b *Bundle) validate() error {
	s := b.Spec
	if err := validateVersion(s.Version); err != nil {
		return err
	}
	rootfs, err := resolveRoot(b.Dir, s.Root)
	if err != nil {
		return err
	}
	b.Rootfs = rootfs
	if s.Process == nil {
		return invalid("process", nil, "missing; create needs the process to run: set process.args, process.cwd and process.user")
	}
	if err := validateProcess(s.Process, "process."); err != nil {
		return err
	}
	if err := validateUTS(s); err != nil {
		return err
	}
	for i, m := range s.Mounts {
		if !filepath.IsAbs(m.Destination) {
			return invalid(fmt.Sprintf("mounts[%d].destination", i), nil,
				"%q is not an absolute path; give the absolute path inside the container", m.Destination)
		}
	}
	if s.Linux != nil {
		if err := validateLinux(s.Linux); err != nil {
			return err
		}
	}
	if s.Hooks != nil {
		return validateHooks(s.Hooks)
	}
	return nil
}

func validateVersion(v string) error {
	switch {
	case v == "":
		return invalid("ociVersion", nil, "missing; set it to the runtime-spec version the config follows, e.g. %q", specs.Version)
	case semver.MatchString(v):
		return nil
	case strings.HasPrefix(v, "1."):
		return invalid("ociVersion", nil, "%q is not a semantic version; write it as 1.MINOR.PATCH, e.g. %q", v, specs.Version)
	}
	return invalid("ociVersion", nil, "%q is not supported; vxn runs runtime-spec 1.x configs, e.g. %q", v, specs.Version)
}

// resolveRoot returns the absolute, cleaned root filesystem directory.
func resolveRoot(dir string, root *specs.Root) (string, error) {
	if root == nil {
		return "", invalid("root", nil, `missing; set root.path to the root filesystem directory, e.g. {"path": "rootfs"}`)
	}
	if root.Path == "" {
		return "", invalid("root.path", nil, "empty; set it to the root filesystem directory (relative to the bundle, or absolute)")
	}
	p := root.Path
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	p = filepath.Clean(p)
	fi, err := os.Stat(p)
	if os.IsNotExist(err) {
		return "", invalid("root.path", err, "%s does not exist; create the root filesystem there or fix root.path", p)
	}
	if err != nil {
		return "", invalid("root.path", err, "%v", err)
	}
	if !fi.IsDir() {
		return "", invalid("root.path", nil, "%s is not a directory; root.path must name the root filesystem directory", p)
	}
	return p, nil
}

// ValidateProcess checks a process as Load checks config.json's process:
// it is what `exec --process FILE` needs. Errors wrap ErrInvalid and name
// the field relative to the process ("args", "rlimits[0].type").
func ValidateProcess(p *specs.Process) error {
	if p == nil {
		return invalid("", nil, "no process given")
	}
	return validateProcess(p, "")
}

// validateProcess checks p; prefix is prepended to field names.
func validateProcess(p *specs.Process, prefix string) error {
	if len(p.Args) == 0 {
		return invalid(prefix+"args", nil, `empty; set the command to run, e.g. ["sh"]`)
	}
	switch {
	case p.Cwd == "":
		return invalid(prefix+"cwd", nil, `empty; set the working directory inside the container, e.g. "/"`)
	case !filepath.IsAbs(p.Cwd):
		return invalid(prefix+"cwd", nil, "%q is not an absolute path; give the absolute working directory inside the container", p.Cwd)
	}
	for i, kv := range p.Env {
		field := fmt.Sprintf("%senv[%d]", prefix, i)
		name, _, ok := strings.Cut(kv, "=")
		switch {
		case !ok:
			return invalid(field, nil, "%q has no '='; write it as NAME=value", kv)
		case name == "":
			return invalid(field, nil, "%q has an empty name; write it as NAME=value", kv)
		case strings.ContainsRune(kv, 0):
			return invalid(field, nil, "%q contains a NUL byte; remove it", kv)
		}
	}
	if err := validateRlimits(p.Rlimits, prefix+"rlimits"); err != nil {
		return err
	}
	if c := p.Capabilities; c != nil {
		sets := []struct {
			name string
			caps []string
		}{
			{"bounding", c.Bounding},
			{"effective", c.Effective},
			{"inheritable", c.Inheritable},
			{"permitted", c.Permitted},
			{"ambient", c.Ambient},
		}
		for _, set := range sets {
			for i, name := range set.caps {
				if _, ok := Capability(name); !ok {
					return invalid(fmt.Sprintf("%scapabilities.%s[%d]", prefix, set.name, i), nil,
						"unknown capability %q; use a CAP_* name from capabilities(7), e.g. \"CAP_KILL\"", name)
				}
			}
		}
	}
	return nil
}

func validateRlimits(rlimits []specs.POSIXRlimit, field string) error {
	seen := make(map[string]int, len(rlimits))
	for i, r := range rlimits {
		if _, ok := Rlimit(r.Type); !ok {
			return invalid(fmt.Sprintf("%s[%d].type", field, i), nil,
				"unknown rlimit %q; use one of %s", r.Type, strings.Join(rlimitNames(), ", "))
		}
		if j, dup := seen[r.Type]; dup {
			return invalid(fmt.Sprintf("%s[%d].type", field, i), nil,
				"%s is set twice (also %s[%d]); keep one", r.Type, field, j)
		}
		seen[r.Type] = i
		if r.Soft > r.Hard {
			return invalid(fmt.Sprintf("%s[%d]", field, i), nil,
				"%s soft limit %d is above its hard limit %d; lower soft or raise hard", r.Type, r.Soft, r.Hard)
		}
	}
	return nil
}

// validateUTS refuses a hostname or domainname without a UTS namespace,
// as runc does: setting it would change the host's.
func validateUTS(s *specs.Spec) error {
	if s.Hostname == "" && s.Domainname == "" {
		return nil
	}
	if s.Linux != nil {
		for _, ns := range s.Linux.Namespaces {
			if ns.Type == specs.UTSNamespace {
				return nil
			}
		}
	}
	field := "hostname"
	if s.Hostname == "" {
		field = "domainname"
	}
	return invalid(field, nil, "unable to set %s without a private UTS namespace; "+
		`add {"type": "uts"} to linux.namespaces or remove %s`, field, field)
}

// namespaceTypes are the linux.namespaces types vxn knows.
var namespaceTypes = []specs.LinuxNamespaceType{
	specs.PIDNamespace, specs.NetworkNamespace, specs.MountNamespace, specs.IPCNamespace,
	specs.UTSNamespace, specs.UserNamespace, specs.CgroupNamespace, specs.TimeNamespace,
}

func validateLinux(l *specs.Linux) error {
	seen := make(map[specs.LinuxNamespaceType]int, len(l.Namespaces))
	for i, ns := range l.Namespaces {
		field := fmt.Sprintf("linux.namespaces[%d]", i)
		if !slices.Contains(namespaceTypes, ns.Type) {
			names := make([]string, len(namespaceTypes))
			for k, t := range namespaceTypes {
				names[k] = string(t)
			}
			return invalid(field+".type", nil, "unknown namespace type %q; use one of %s", ns.Type, strings.Join(names, ", "))
		}
		if j, dup := seen[ns.Type]; dup {
			return invalid(field+".type", nil, "%q is listed twice (also linux.namespaces[%d]); keep one", ns.Type, j)
		}
		seen[ns.Type] = i
		if ns.Path != "" && !filepath.IsAbs(ns.Path) {
			return invalid(field+".path", nil, "%q is not an absolute path; give the namespace file's absolute path, e.g. /run/netns/NAME", ns.Path)
		}
	}
	for key, value := range l.Sysctl {
		if strings.TrimSpace(key) == "" {
			return invalid("linux.sysctl", nil, "empty key (with value %q); remove it or name the sysctl, e.g. net.ipv4.ip_forward", value)
		}
	}
	for i, d := range l.Devices {
		field := fmt.Sprintf("linux.devices[%d]", i)
		switch d.Type {
		case "c", "b", "u", "p":
		default:
			return invalid(field+".type", nil, "%q is not a device type; use c (character), b (block), u (unbuffered character) or p (FIFO)", d.Type)
		}
		if !filepath.IsAbs(d.Path) {
			return invalid(field+".path", nil, "%q is not an absolute path; give the device's absolute path inside the container, e.g. /dev/fuse", d.Path)
		}
	}
	return nil
}

func validateHooks(h *specs.Hooks) error {
	kinds := []struct {
		name  string
		hooks []specs.Hook
	}{
		{"prestart", h.Prestart},
		{"createRuntime", h.CreateRuntime},
		{"createContainer", h.CreateContainer},
		{"startContainer", h.StartContainer},
		{"poststart", h.Poststart},
		{"poststop", h.Poststop},
	}
	for _, k := range kinds {
		for i, hook := range k.hooks {
			field := fmt.Sprintf("hooks.%s[%d]", k.name, i)
			if !filepath.IsAbs(hook.Path) {
				return invalid(field+".path", nil, "%q is not an absolute path; give the hook program's absolute path", hook.Path)
			}
			if hook.Timeout != nil && *hook.Timeout <= 0 {
				return invalid(field+".timeout", nil, "%d is not a positive number of seconds; raise it or remove timeout", *hook.Timeout)
			}
		}
	}
	return nil
}

// CloneFlag returns the CLONE_NEW* flag of a namespace type (what
// NS_GET_NSTYPE returns for its files), 0 for an unknown type.
func CloneFlag(t specs.LinuxNamespaceType) int { return cloneFlags[t] }

// cloneFlags maps namespace types to their CLONE_NEW* flags.
var cloneFlags = map[specs.LinuxNamespaceType]int{
	specs.PIDNamespace: unix.CLONE_NEWPID, specs.NetworkNamespace: unix.CLONE_NEWNET,
	specs.MountNamespace: unix.CLONE_NEWNS, specs.IPCNamespace: unix.CLONE_NEWIPC,
	specs.UTSNamespace: unix.CLONE_NEWUTS, specs.UserNamespace: unix.CLONE_NEWUSER,
	specs.CgroupNamespace: unix.CLONE_NEWCGROUP, specs.TimeNamespace: unix.CLONE_NEWTIME,
}

// CheckNamespaceFiles checks, at create time, that every namespace path of
// the spec names a namespace of the declared type.
func (b *Bundle) CheckNamespaceFiles() error {
	if b.Spec.Linux == nil {
		return nil
	}
	for i, ns := range b.Spec.Linux.Namespaces {
		if ns.Path == "" {
			continue
		}
		if err := checkNamespaceFile(ns); err != nil {
			return fmt.Errorf("bundle %s: %s: linux.namespaces[%d].path: %w", b.Dir, ConfigFile, i, err)
		}
	}
	return nil
}

// checkNamespaceFile checks that a namespace path names a namespace of
// the declared type.
func checkNamespaceFile(ns specs.LinuxNamespace) error {
	f, err := os.Open(ns.Path)
	if err != nil {
		return fmt.Errorf("%s namespace %s: %w", ns.Type, ns.Path, err)
	}
	defer f.Close()
	t, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_NSTYPE)
	if err != nil {
		return fmt.Errorf("%s is not a namespace file (%v); give a path such as /proc/PID/ns/%s or /run/netns/NAME", ns.Path, err, nsFileName(ns.Type))
	}
	if want := CloneFlag(ns.Type); t != want {
		return fmt.Errorf("%s is not a %s namespace; give the %s namespace's file", ns.Path, ns.Type, ns.Type)
	}
	return nil
}

func nsFileName(t specs.LinuxNamespaceType) string {
	switch t {
	case specs.NetworkNamespace:
		return "net"
	case specs.MountNamespace:
		return "mnt"
	}
	return string(t)
}
