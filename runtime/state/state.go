// Package state keeps vxn's per-container records: one directory per
// container under the root (default /run/vxn), holding state.json (written
// by temp file + rename), a lock file every mutating command holds with
// flock, the monitor's control socket, logs and disk images.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"time"

	"golang.org/x/sys/unix"
)

// Sentinel errors, wrapped with the container ID.
var (
	ErrNotExist  = errors.New("container does not exist")
	ErrExist     = errors.New("container already exists")
	ErrInvalidID = errors.New("invalid container id")
)

// File names inside a container directory.
const (
	StateFile   = "state.json"
	LockFile    = "lock"
	SocketFile  = "monitor.sock"
	MonitorLog  = "monitor.log"
	ConsoleLog  = "console.log"
	RootfsImage = "rootfs.img"
	ExitFile    = "exit.json"
)

// maxIDLen bounds IDs. Engines use 64 hex digits (podman, Docker,
// containerd, CRI-O).
const maxIDLen = 128

var idRegexp = regexp.MustCompile(`^[\w+\-.]+$`)

// ValidateID applies runc's rules: letters, digits, '_', '+', '-', '.',
// not "." or "..", non-empty, bounded length.
func ValidateID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: the id is empty", ErrInvalidID)
	case len(id) > maxIDLen:
		return fmt.Errorf("%w %q: longer than %d characters", ErrInvalidID, id, maxIDLen)
	case id == "." || id == ".." || !idRegexp.MatchString(id):
		return fmt.Errorf("%w %q: use letters, digits, '_', '+', '-' and '.'", ErrInvalidID, id)
	}
	return nil
}

// Container is what state.json records. Status is not stored: it is
// derived from live facts (see Status in package lifecycle).
type Container struct {
	ID          string            `json:"id"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Created     time.Time         `json:"created"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// MonitorPid and MonitorStart identify the monitor process; the start
	// time (clock ticks since boot) guards against PID reuse.
	MonitorPid   int    `json:"monitorPid"`
	MonitorStart uint64 `json:"monitorStart"`
	Hypervisor   string `json:"hypervisor"`
	Domain       string `json:"domain"`
	// Started is set once start has been accepted by the monitor.
	Started bool `json:"started"`
	// Owner is the uid that created the container.
	Owner int `json:"owner"`
}

// Store is the root directory of all containers.
type Store struct {
	Root string
}

// Dir is one container's directory.
type Dir struct {
	ID   string
	Path string
}

// Create makes the directory of a new container. Exactly one of several
// concurrent Creates of the same ID succeeds; the others get ErrExist.
func (s Store) Create(id string) (*Dir, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(s.Root, 0o711); err != nil {
		return nil, fmt.Errorf("creating state root %s: %w", s.Root, err)
	}
	p := filepath.Join(s.Root, id)
	if err := os.Mkdir(p, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("%w: %s", ErrExist, id)
		}
		return nil, fmt.Errorf("creating state directory: %w", err)
	}
	return &Dir{ID: id, Path: p}, nil
}

// Open finds an existing container's directory.
func (s Store) Open(id string) (*Dir, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	p := filepath.Join(s.Root, id)
	if _, err := os.Stat(filepath.Join(p, StateFile)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s", ErrNotExist, id)
		}
		return nil, fmt.Errorf("reading state of %s: %w", id, err)
	}
	return &Dir{ID: id, Path: p}, nil
}

// List returns the IDs of all containers with a state file, sorted.
func (s Store) List() ([]string, error) {
	ents, err := os.ReadDir(s.Root)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("listing %s: %w", s.Root, err)
	}
	var ids []string
	for _, e := range ents {
		if !e.IsDir() || ValidateID(e.Name()) != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(s.Root, e.Name(), StateFile)); err == nil {
			ids = append(ids, e.Name())
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// File returns the path of a file in the container directory.
func (d *Dir) File(name string) string { return filepath.Join(d.Path, name) }

// Lock takes the container's exclusive lock, waiting for it. Every command
// that changes a container holds it.
func (d *Dir) Lock() (unlock func(), err error) {
	f, err := os.OpenFile(d.File(LockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("locking container %s: %w", d.ID, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("locking container %s: %w", d.ID, err)
	}
	return func() { f.Close() }, nil
}

// Save writes state.json atomically (temp file, fsync, rename).
func (d *Dir) Save(c *Container) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding state of %s: %w", d.ID, err)
	}
	return WriteFileAtomic(d.File(StateFile), b, 0o600)
}

// Load reads state.json.
func (d *Dir) Load() (*Container, error) {
	b, err := os.ReadFile(d.File(StateFile))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s", ErrNotExist, d.ID)
		}
		return nil, fmt.Errorf("reading state of %s: %w", d.ID, err)
	}
	var c Container
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("state of %s is corrupt (%s): %w; remove it with 'vxn delete --force %s'", d.ID, d.File(StateFile), err, d.ID)
	}
	return &c, nil
}

// Remove deletes the container directory and everything in it.
func (d *Dir) Remove() error {
	if err := os.RemoveAll(d.Path); err != nil {
		return fmt.Errorf("removing state of %s: %w", d.ID, err)
	}
	return nil
}

// WriteFileAtomic writes data to path through a temporary file in the same
// directory and a rename, so readers see the old or the new file, never a
// partial one.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
