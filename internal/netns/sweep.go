package netns

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	namePrefix = "dchn"       // every namespace and root interface we create
	maxIfName  = 15           // IFNAMSIZ - 1
	etcNetns   = "/etc/netns" // where "ip netns exec" finds per-namespace /etc files
	ipTimeout  = 30 * time.Second
)

// registry records the Nets of this process that are alive, so that two of
// them never share an id or a subnet and New never sweeps a live one (the
// names of all of them carry the same pid). It also serialises Available's
// probe with New's sweep of leftovers.
var registry struct {
	sync.Mutex
	live map[string]string // Net id → its subnet, "" until chosen
}

// reserveID sweeps the leftovers of dead processes (and of this process's
// closed Nets) and reserves the smallest free id of this process.
func reserveID(ip ipTool) (string, error) {
	registry.Lock()
	defer registry.Unlock()
	if registry.live == nil {
		registry.live = make(map[string]string)
	}
	self := os.Getpid()
	err := sweep(ip, func(name string) bool {
		pid, id, ok := parseName(name)
		if !ok {
			return false
		}
		if pid == self {
			_, live := registry.live[id]
			return !live
		}
		return !processAlive(pid)
	})
	if err != nil {
		return "", fmt.Errorf("netns: removing leftovers of dead processes: %w", err)
	}
	for seq := 0; ; seq++ {
		id := netID(self, seq)
		if _, used := registry.live[id]; !used {
			registry.live[id] = ""
			return id, nil
		}
	}
}

// release forgets the Net's id and subnet.
func (n *Net) release() {
	registry.Lock()
	defer registry.Unlock()
	delete(registry.live, n.id)
}

// netID is the id of a Net: the prefix of all its names.
func netID(pid, seq int) string {
	return namePrefix + strconv.FormatInt(int64(pid), 36) + "-" + strconv.FormatInt(int64(seq), 36)
}

// parseName splits a name made by this package into the creating pid and
// the id of its Net (or of Available's probe); ok is false for other names.
func parseName(name string) (pid int, id string, ok bool) {
	rest, ok := strings.CutPrefix(name, namePrefix)
	if !ok {
		return 0, "", false
	}
	parts := strings.SplitN(rest, "-", 3)
	if len(parts) < 2 || parts[1] == "" {
		return 0, "", false
	}
	p, err := strconv.ParseInt(parts[0], 36, 32)
	if err != nil || p <= 0 {
		return 0, "", false
	}
	return int(p), namePrefix + parts[0] + "-" + parts[1], true
}

// belongsTo reports whether name is id or one of the names made from it.
func belongsTo(name, id string) bool {
	return name == id || strings.HasPrefix(name, id+"-")
}

// processAlive reports whether a process with the given pid exists. When
// in doubt it says yes, so that nothing of a live process is swept.
func processAlive(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return !errors.Is(err, fs.ErrNotExist)
}

// sweep removes everything of ours whose name match accepts: it kills the
// processes in such namespaces, then deletes such root interfaces,
// namespaces and /etc/netns directories. It goes on past failures and
// returns them all; something that vanished meanwhile is no failure.
func sweep(ip ipTool, match func(name string) bool) error {
	var errs []error
	nss, err := ip.namespaces()
	if err != nil {
		errs = append(errs, err)
	}
	nss = slices.DeleteFunc(nss, func(ns string) bool { return !match(ns) })
	for _, ns := range nss {
		if err := ip.killAll(ns); err != nil {
			errs = append(errs, err)
		}
	}

	links, err := ip.rootLinks()
	if err != nil {
		errs = append(errs, err)
	}
	for _, link := range links {
		if !match(link) {
			continue
		}
		if _, err := ip.run("link", "del", "dev", link); err != nil {
			if now, lerr := ip.rootLinks(); lerr != nil || slices.Contains(now, link) {
				errs = append(errs, err)
			}
		}
	}

	for _, ns := range nss {
		if _, err := ip.run("netns", "del", ns); err != nil {
			if now, lerr := ip.namespaces(); lerr != nil || slices.Contains(now, ns) {
				errs = append(errs, err)
			}
		}
	}

	dirs, err := os.ReadDir(etcNetns)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, fmt.Errorf("netns: %w", err))
	}
	for _, d := range dirs {
		if match(d.Name()) {
			if err := os.RemoveAll(filepath.Join(etcNetns, d.Name())); err != nil {
				errs = append(errs, fmt.Errorf("netns: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

// ipTool is the path of iproute2's ip command.
type ipTool string

// lookIP finds ip on PATH or, since PATH often lacks the sbin directories,
// where distributions install it.
func lookIP() (ipTool, error) {
	path, err := exec.LookPath("ip")
	if err == nil {
		return ipTool(path), nil
	}
	for _, p := range []string{"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"} {
		if st, serr := os.Stat(p); serr == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return ipTool(p), nil
		}
	}
	return "", fmt.Errorf("netns: iproute2's ip command not found: %w", err)
}

// run runs ip with args and returns its output; the error names the
// command and quotes its output.
func (ip ipTool) run(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ipTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, string(ip), args...).CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if msg != "" {
			msg = ": " + msg
		}
		return out, fmt.Errorf("netns: %s %s: %w%s", ip, strings.Join(args, " "), err, msg)
	}
	return out, nil
}

// runAll runs ip once per step, in order, and stops at the first failure.
func (ip ipTool) runAll(steps [][]string) error {
	for _, args := range steps {
		if _, err := ip.run(args...); err != nil {
			return err
		}
	}
	return nil
}

// namespaces lists the named network namespaces.
func (ip ipTool) namespaces() ([]string, error) {
	out, err := ip.run("netns", "list")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, line := range lines(out) {
		names = append(names, strings.Fields(line)[0]) // "name (id: 3)"
	}
	return names, nil
}

// rootLinks lists the interfaces of the root namespace.
func (ip ipTool) rootLinks() ([]string, error) {
	out, err := ip.run("-o", "link", "show")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, line := range lines(out) {
		f := strings.Fields(line) // "12: name@if2: <BROADCAST,..."
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		names = append(names, name)
	}
	return names, nil
}

// killAll sends SIGKILL to every process in namespace ns.
func (ip ipTool) killAll(ns string) error {
	out, err := ip.run("netns", "pids", ns)
	if err != nil {
		return err
	}
	var errs []error
	for _, line := range lines(out) {
		pid, err := strconv.Atoi(line)
		if err != nil || pid == os.Getpid() {
			continue
		}
		p, err := os.FindProcess(pid)
		if err != nil {
			continue
		}
		if err := p.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			errs = append(errs, fmt.Errorf("netns: killing pid %d in %s: %w", pid, ns, err))
		}
		_ = p.Release()
	}
	return errors.Join(errs...)
}

// lines returns the non-blank lines of out, trimmed.
func lines(out []byte) []string {
	var ls []string
	for l := range strings.Lines(string(out)) {
		if l = strings.TrimSpace(l); l != "" {
			ls = append(ls, l)
		}
	}
	return ls
}
