package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/vxn-runtime/vxn/runtime/hypervisor"
	"github.com/vxn-runtime/vxn/runtime/hypervisor/xen"
)

// The warm pool: `vxn pool start` runs a manager (`vxn pool serve`,
// detached) that keeps idle guests booted; create claims one instead of
// booting (runtime/hypervisor/xen, pool.go). The manager's files are
// under <root>/pool: its pid file, which it holds locked while it runs,
// and its log.

// poolConfig is the "pool" section of the configuration file.
type poolConfig struct {
	Size      int    `json:"size"`      // idle guests to keep; default 2
	MemoryMiB uint64 `json:"memoryMiB"` // default: the guests' memoryMiB
	VCPUs     int    `json:"vcpus"`     // default: the guests' vcpus
}

const (
	poolDirName     = "pool"
	poolPidFile     = "manager.pid"
	poolLogFile     = "manager.log"
	defaultPoolSize = 2
	// poolInterval is how often the manager checks its guests.
	poolInterval = time.Second
	// poolStopWait bounds how long stop waits for the manager to exit.
	poolStopWait = 2 * time.Minute
)

var poolCommand = &cli.Command{
	Name:  "pool",
	Usage: "keep idle guests booted, so that create claims one instead of booting a guest",
	Description: `The pool section of the configuration file sizes the pool:
   {"pool": {"size": 2, "memoryMiB": 256, "vcpus": 1}}
A container lands in an idle guest when its guest has the pool's kernel,
initramfs, type, command line and vCPUs, at most its memory and no CPU
pinning; otherwise create boots one.`,
	Subcommands: []*cli.Command{
		{
			Name:  "start",
			Usage: "start the pool manager in the background",
			Flags: []cli.Flag{
				&cli.IntFlag{Name: "size", Usage: "idle guests to keep (overrides the configuration file)"},
			},
			Action: poolStart,
		},
		{
			Name:   "stop",
			Usage:  "stop the pool manager and destroy the idle guests",
			Action: poolStop,
		},
		{
			Name:  "status",
			Usage: "show whether the pool manager runs, and the idle guests",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Value: "table", Usage: "table or json"},
			},
			Action: poolStatus,
		},
		{
			Name:   "serve",
			Hidden: true,
			Usage:  "run the pool manager in the foreground (pool start runs it detached)",
			Flags: []cli.Flag{
				&cli.IntFlag{Name: "size"},
				&cli.BoolFlag{Name: "notify", Usage: "report startup on fd 3"},
			},
			Action: poolServe,
		},
	},
}

// poolSetup is what the pool commands share: the pool directory, the
// pool's guest, and its size.
type poolSetup struct {
	dir  string
	spec hypervisor.DomainSpec
	size int
}

func newPoolSetup(c *cli.Context) (*poolSetup, error) {
	root, err := filepath.Abs(c.String("root"))
	if err != nil {
		return nil, err
	}
	if h := c.String("hypervisor"); h != "xen" {
		return nil, fmt.Errorf("the pool needs the xen hypervisor, not %q", h)
	}
	cfg, err := loadConfig(c.String("config"))
	if err != nil {
		return nil, err
	}
	cfg.override(c)
	g := cfg.guest()
	s := &poolSetup{
		dir: filepath.Join(root, poolDirName),
		spec: hypervisor.DomainSpec{
			Type: g.Type, Kernel: g.Kernel, Ramdisk: g.Initramfs, Cmdline: g.Cmdline,
			MemoryMiB: g.MemoryMiB, VCPUs: g.VCPUs,
		},
		size: cfg.Pool.Size,
	}
	if cfg.Pool.MemoryMiB != 0 {
		s.spec.MemoryMiB = cfg.Pool.MemoryMiB
	}
	if cfg.Pool.VCPUs != 0 {
		s.spec.VCPUs = cfg.Pool.VCPUs
	}
	if n := c.Int("size"); n != 0 {
		s.size = n
	}
	if s.size == 0 {
		s.size = defaultPoolSize
	}
	if s.size < 0 {
		return nil, fmt.Errorf("pool size %d: give a positive number", s.size)
	}
	return s, nil
}

// manager reports the running manager's pid, or 0 when none runs: the
// manager holds its pid file locked.
func (s *poolSetup) manager() (int, error) {
	f, err := os.Open(filepath.Join(s.dir, poolPidFile))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	err = unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
	if err == nil {
		return 0, nil // stale: nobody holds it
	}
	if !errors.Is(err, unix.EWOULDBLOCK) {
		return 0, fmt.Errorf("locking %s: %w", f.Name(), err)
	}
	b, err := io.ReadAll(io.LimitReader(f, 32))
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		// Locked but not written yet: the manager is starting.
		return -1, nil
	}
	return pid, nil
}

func poolStart(c *cli.Context) error {
	s, err := newPoolSetup(c)
	if err != nil {
		return err
	}
	if pid, err := s.manager(); err != nil || pid != 0 {
		if err != nil {
			return err
		}
		return fmt.Errorf("the pool manager already runs (pid %d): `vxn pool stop` it first", pid)
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return err
	}
	logPath := filepath.Join(s.dir, poolLogFile)
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding the vxn binary: %w", err)
	}
	args := []string{"--root", filepath.Dir(s.dir), "--config", c.String("config")}
	for _, f := range []string{"kernel", "initramfs"} {
		if v := c.String(f); v != "" {
			args = append(args, "--"+f, v)
		}
	}
	if c.Bool("debug") {
		args = append(args, "--debug")
	}
	args = append(args, "pool", "serve", "--notify", "--size", strconv.Itoa(s.size))
	syncR, syncW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer syncR.Close()
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{syncW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	syncW.Close()
	if err != nil {
		return fmt.Errorf("starting the pool manager: %w", err)
	}
	var msg struct {
		Error string `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(syncR, 1<<16)).Decode(&msg); err != nil {
		_ = cmd.Wait()
		return fmt.Errorf("the pool manager exited at start; see %s", logPath)
	}
	if msg.Error != "" {
		_ = cmd.Wait()
		return fmt.Errorf("pool manager: %s", msg.Error)
	}
	// It runs on in its own session; this process does not wait for it.
	_ = cmd.Process.Release()
	fmt.Printf("pool manager started (pid %d): %d idle guests of %d MiB; log %s\n", cmd.Process.Pid, s.size, s.spec.MemoryMiB, logPath)
	return nil
}

// poolServe is the manager: it holds the pid file locked, keeps the pool
// full until SIGTERM or SIGINT, then destroys the idle guests.
func poolServe(c *cli.Context) (err error) {
	var notify *os.File
	if c.Bool("notify") {
		notify = os.NewFile(3, "notify")
	}
	report := func(err error) {
		if notify == nil {
			return
		}
		msg := map[string]string{}
		if err != nil {
			msg["error"] = err.Error()
		}
		_ = json.NewEncoder(notify).Encode(msg)
		notify.Close()
		notify = nil
	}
	defer func() { report(err) }()
	logrus.SetOutput(os.Stderr)
	s, err := newPoolSetup(c)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return err
	}
	pidPath := filepath.Join(s.dir, poolPidFile)
	pf, err := os.OpenFile(pidPath, os.O_RDWR|os.O_CREATE|syscall.O_CLOEXEC, 0o644)
	if err != nil {
		return err
	}
	defer pf.Close()
	if err := unix.Flock(int(pf.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fmt.Errorf("another pool manager runs (%s is locked): %w", pidPath, err)
	}
	defer os.Remove(pidPath)
	if err := pf.Truncate(0); err != nil {
		return err
	}
	if _, err := pf.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		return err
	}
	hv, err := openXen()
	if err != nil {
		return err
	}
	defer hv.Close()
	logf := func(format string, args ...any) { logrus.Infof(format, args...) }
	pool, err := hv.(*xen.Hypervisor).NewPool(s.spec, s.size, logf)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	logf("pool manager %d: keeping %d idle guests of %d MiB and %d vCPUs (key %s)", os.Getpid(), s.size, s.spec.MemoryMiB, s.spec.VCPUs, pool.Key())
	report(nil)
	return pool.Run(ctx, poolInterval)
}

func poolStop(c *cli.Context) error {
	s, err := newPoolSetup(c)
	if err != nil {
		return err
	}
	pid, err := s.manager()
	if err != nil {
		return err
	}
	if pid > 0 {
		if err := unix.Kill(pid, unix.SIGTERM); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("stopping the pool manager (pid %d): %w", pid, err)
		}
		deadline := time.Now().Add(poolStopWait)
		for {
			left, err := s.manager()
			if err != nil {
				return err
			}
			if left == 0 {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the pool manager (pid %d) did not stop within %v; see %s", pid, poolStopWait, filepath.Join(s.dir, poolLogFile))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// The manager destroys its guests as it stops; whatever is left (it
	// died, or none ran) goes here.
	hv, err := openXen()
	if err != nil {
		return err
	}
	defer hv.Close()
	n, err := hv.(*xen.Hypervisor).DrainPool()
	if pid > 0 {
		fmt.Printf("pool manager (pid %d) stopped\n", pid)
	}
	if n > 0 {
		fmt.Printf("destroyed %d idle guests\n", n)
	}
	return err
}

// poolStatusJSON is `vxn pool status --format json`.
type poolStatusJSON struct {
	Running bool            `json:"running"`
	Pid     int             `json:"pid,omitempty"`
	Key     string          `json:"key,omitempty"`
	Guests  []xen.PoolGuest `json:"guests"`
}

func poolStatus(c *cli.Context) error {
	s, err := newPoolSetup(c)
	if err != nil {
		return err
	}
	format := c.String("format")
	if format != "table" && format != "json" {
		return fmt.Errorf("invalid --format %q: use table or json", format)
	}
	pid, err := s.manager()
	if err != nil {
		return err
	}
	st := poolStatusJSON{Running: pid != 0, Pid: max(pid, 0), Guests: []xen.PoolGuest{}} // -1: starting
	st.Key, _ = xen.PoolKey(s.spec)                                                      // "" when the guest files are missing
	hv, err := openXen()
	if err != nil {
		return err
	}
	defer hv.Close()
	gs, err := hv.(*xen.Hypervisor).PoolGuests(st.Key)
	if err != nil {
		return err
	}
	st.Guests = append(st.Guests, gs...)
	if format == "json" {
		return json.NewEncoder(os.Stdout).Encode(st)
	}
	if st.Running {
		fmt.Printf("pool manager: running (pid %d), log %s\n", st.Pid, filepath.Join(s.dir, poolLogFile))
	} else {
		fmt.Println("pool manager: not running")
	}
	w := tabwriter.NewWriter(os.Stdout, 8, 8, 1, ' ', 0)
	fmt.Fprintln(w, "NAME\tDOMID\tSTATE\tMEMORY\tVCPUS\tREADY\tCURRENT")
	for _, g := range st.Guests {
		fmt.Fprintf(w, "%s\t%d\t%s\t%dMiB\t%d\t%v\t%v\n", g.Name, g.Domid, g.State, g.MemoryMiB, g.VCPUs, g.Ready, g.Current)
	}
	return w.Flush()
}
