// Package hypervisor is the narrow seam between vxn's lifecycle code and
// the thing that runs guests: Xen through libxl in production, a fake that
// runs guestinit as a host process in unit tests.
package hypervisor

import (
	"context"
	"errors"
	"io"
	"net"
)

// Sentinel errors, wrapped with context by implementations.
var (
	// ErrNotFound: no domain of that name exists.
	ErrNotFound = errors.New("domain not found")
	// ErrUnsupported: the implementation cannot do this.
	ErrUnsupported = errors.New("operation not supported by this hypervisor")
)

// GuestType is the virtualisation mode of a guest.
type GuestType string

// Guest types.
const (
	GuestPV  GuestType = "pv"
	GuestPVH GuestType = "pvh"
)

// Disk is a block device given to the guest.
type Disk struct {
	Path     string // host file or block device
	Vdev     string // guest device name, "xvda"
	ReadOnly bool
}

// NIC is a network interface to give a running guest.
type NIC struct {
	MAC net.HardwareAddr // of the guest's side
	MTU int
}

// NICBackend is the host side of a guest's network interface: the network
// interface that carries its frames.
type NICBackend struct {
	Name string
	// Netns is the path of the network namespace the interface is in.
	Netns string
}

// CPU is a guest's share of the host's physical CPUs.
type CPU struct {
	// Weight is its relative share (the scheduler's default when 0).
	Weight int
	// CapPercent is the most CPU time it gets, in percent of one
	// physical CPU; 0 is no cap.
	CapPercent int
	// Affinity lists the physical CPUs it may run on; nil means all.
	Affinity []int
}

// Resources are what `update` changes of a running guest.
type Resources struct {
	MemoryMiB uint64
	CPU       CPU // Affinity is not changed
}

// Share is a host directory the guest mounts live (a directory volume):
// changes show on both sides at once.
type Share struct {
	Tag      string // the name the guest mounts it by, unique in the guest
	Path     string // the host directory
	ReadOnly bool   // the guest cannot change it, whatever it does
}

// DomainSpec describes a guest to create.
type DomainSpec struct {
	Name      string // unique; "vxn-<container id>"
	Type      GuestType
	Kernel    string
	Ramdisk   string
	Cmdline   string
	MemoryMiB uint64
	VCPUs     int
	CPU       CPU
	Disks     []Disk
	Shares    []Share
	// ConsoleLog receives the guest's console (kernel log) for diagnostics.
	ConsoleLog string
	// RootfsDir is the bundle rootfs directory. Only the fake uses it; a
	// real guest sees Disks.
	RootfsDir string
	// StateDir is a private directory for the implementation's files.
	StateDir string
}

// DomainState is what the hypervisor reports about a guest.
type DomainState string

// Domain states.
const (
	StateRunning  DomainState = "running"
	StatePaused   DomainState = "paused"
	StateShutdown DomainState = "shutdown"
	StateCrashed  DomainState = "crashed"
	StateDying    DomainState = "dying"
)

// DomainInfo is a snapshot of a guest.
type DomainInfo struct {
	ID        uint32
	Name      string
	State     DomainState
	MemoryKiB uint64
	VCPUs     int
	CPUTimeNs uint64
}

// ShutdownReason says why a guest stopped.
type ShutdownReason string

// Reasons a guest stopped.
const (
	ReasonPoweroff  ShutdownReason = "poweroff"
	ReasonReboot    ShutdownReason = "reboot"
	ReasonCrash     ShutdownReason = "crash"
	ReasonDestroyed ShutdownReason = "destroyed"
	ReasonUnknown   ShutdownReason = "unknown"
)

// Hypervisor creates and finds guests.
type Hypervisor interface {
	// Create builds and starts a guest. On error nothing is left behind.
	Create(ctx context.Context, spec DomainSpec) (Domain, error)
	// Lookup finds a running guest by name, for commands other than the
	// monitor that owns it (delete of an orphan, pause, stats).
	Lookup(ctx context.Context, name string) (Domain, error)
	// Close releases the hypervisor connection.
	Close() error
}

// Domain is one guest.
type Domain interface {
	Name() string
	// Connect opens the agent channel to guestinit, waiting for the guest
	// side to appear until ctx ends.
	Connect(ctx context.Context) (io.ReadWriteCloser, error)
	// Wait blocks until the guest has stopped running and reports why.
	Wait(ctx context.Context) (ShutdownReason, error)
	Pause(ctx context.Context) error
	Unpause(ctx context.Context) error
	Info(ctx context.Context) (DomainInfo, error)
	// AddNIC gives the running guest a network interface and returns its
	// host side. It goes away with the guest.
	AddNIC(ctx context.Context, nic NIC) (NICBackend, error)
	// SetResources changes a running guest's memory target (at most what
	// it was created with) and its CPU weight and cap. Zero fields are
	// left as they are.
	SetResources(ctx context.Context, r Resources) error
	// Destroy stops the guest at once and frees it. Destroying a guest that
	// is already gone is not an error.
	Destroy(ctx context.Context) error
}
