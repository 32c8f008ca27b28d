package main

// The suite's side of the processes: a trial is one candidate's run in one
// round. It starts the candidate's processes (this binary again, with
// -role), waits for each to report ready, measures, and stops them.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// trial is one candidate's run of one shape in one round.
type trial struct {
	o     *options
	shape string
	cand  string
	round int
	procs []*proc
}

// proc is one process of a trial.
type proc struct {
	role    string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	reports chan report // closed when the process has stopped reporting
	logs    *tailWriter // its stdout and stderr, the last few KB
	exited  chan struct{}
	addr    string // from its ready report

	mu     sync.Mutex
	failed string // its fail report
}

// start starts a process of the role with args and returns once it reported
// ready.
func (t *trial) start(role string, args ...string) (*proc, error) {
	argv := append([]string{"-role", role}, args...)
	if t.o.profileDir != "" {
		name := fmt.Sprintf("%s.%s.r%d.%d-%s.pprof", t.shape, t.cand, t.round, len(t.procs)+1, role)
		argv = append(argv, "-cpuprofile", filepath.Join(t.o.profileDir, name))
	}
	p := &proc{
		role:    role,
		cmd:     exec.Command(t.o.exe, argv...),
		reports: make(chan report, 16),
		logs:    &tailWriter{max: 8 << 10},
		exited:  make(chan struct{}),
	}
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	p.cmd.ExtraFiles = []*os.File{w} // the role's file descriptor 3
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	err = p.cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return nil, err
	}
	t.procs = append(t.procs, p)
	go p.read(r)
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	ready, err := p.await("ready", startupTimeout)
	if err != nil {
		return nil, err
	}
	p.addr = ready.Addr
	return p, nil
}

func (p *proc) read(r io.ReadCloser) {
	defer close(p.reports)
	defer r.Close()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var rep report
		if err := json.Unmarshal(sc.Bytes(), &rep); err != nil {
			continue
		}
		if rep.Kind == "fail" {
			p.mu.Lock()
			p.failed = rep.Err
			p.mu.Unlock()
		}
		p.reports <- rep
	}
}

// await returns the process's next report of kind.
func (p *proc) await(kind string, timeout time.Duration) (report, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case rep, ok := <-p.reports:
			switch {
			case !ok:
				return report{}, p.failure("ended")
			case rep.Kind == "fail":
				return report{}, p.failure("failed")
			case rep.Kind == kind:
				return rep, nil
			}
		case <-timer.C:
			return report{}, p.failure(fmt.Sprintf("no %s report within %v", kind, timeout))
		}
	}
}

// failure describes what went wrong with p, with its last output.
func (p *proc) failure(what string) error {
	p.mu.Lock()
	failed := p.failed
	p.mu.Unlock()
	msg := fmt.Sprintf("%s %s", p.role, what)
	if failed != "" {
		msg += ": " + failed
	}
	if out := strings.TrimSpace(p.logs.String()); out != "" {
		msg += "\n--- its output (end) ---\n" + out
	}
	return errors.New(msg)
}

// ask sends p a command and returns its answer.
func (p *proc) ask(cmd string) (report, error) {
	if _, err := io.WriteString(p.stdin, cmd+"\n"); err != nil {
		return report{}, p.failure("gone: " + err.Error())
	}
	return p.await(cmd, 10*time.Second)
}

// markAll marks every process of the trial (starting or stopping their
// CPU profiles) and returns their answers.
func (t *trial) markAll() (map[*proc]report, error) {
	for _, p := range t.procs {
		if _, err := io.WriteString(p.stdin, "mark\n"); err != nil {
			return nil, p.failure("gone: " + err.Error())
		}
	}
	marks := make(map[*proc]report, len(t.procs))
	for _, p := range t.procs {
		rep, err := p.await("mark", 10*time.Second)
		if err != nil {
			return nil, err
		}
		marks[p] = rep
	}
	return marks, nil
}

// awaitFirstValues returns once the meters together counted a value.
func (t *trial) awaitFirstValues(meters ...*proc) error {
	deadline := time.Now().Add(startupTimeout)
	for {
		var total int64
		for _, p := range meters {
			rep, err := p.ask("count")
			if err != nil {
				return err
			}
			total += rep.Count
		}
		if total > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no value arrived within %v", startupTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// window waits for the first values at the meters, lets the warm-up pass,
// and returns the marks at the start and the end of a measuring window of
// the suite's duration.
func (t *trial) window(d time.Duration, meters ...*proc) (from, to map[*proc]report, err error) {
	if err := t.awaitFirstValues(meters...); err != nil {
		return nil, nil, err
	}
	time.Sleep(t.o.warmup)
	if from, err = t.markAll(); err != nil {
		return nil, nil, err
	}
	time.Sleep(d)
	if to, err = t.markAll(); err != nil {
		return nil, nil, err
	}
	return from, to, nil
}

// rate is the values per second the meters counted together between two
// marks, each in its own clock.
func rate(from, to map[*proc]report, meters ...*proc) float64 {
	var r float64
	for _, p := range meters {
		r += float64(to[p].Count-from[p].Count) / (float64(to[p].Nanos-from[p].Nanos) / 1e9)
	}
	return r
}

// dropped sums what every process reported lost by the mark to.
func dropped(to map[*proc]report) int64 {
	var n int64
	for _, rep := range to {
		n += rep.Dropped
	}
	return n
}

// throughput measures the values per second the meters receive together.
func (t *trial) throughput(meters ...*proc) (measurement, error) {
	from, to, err := t.window(t.o.duration, meters...)
	if err != nil {
		return measurement{}, err
	}
	r := rate(from, to, meters...)
	return measurement{Value: r, Rate: r, Dropped: dropped(to)}, nil
}

// roundTrip measures the round trips a requester timed in the window.
func (t *trial) roundTrip(req *proc) (measurement, error) {
	from, to, err := t.window(t.o.duration, req)
	if err != nil {
		return measurement{}, err
	}
	lat := to[req].Lat
	if lat == nil {
		return measurement{}, fmt.Errorf("%s timed no round trip", req.role)
	}
	return measurement{Value: lat.P50, Rate: rate(from, to, req), Lat: lat}, nil
}

// fixedCount waits for the process's result: values in seconds.
func (t *trial) fixedCount(p *proc) (measurement, error) {
	if _, err := t.markAll(); err != nil {
		return measurement{}, err
	}
	res, err := p.await("result", 5*time.Minute)
	if err != nil {
		return measurement{}, err
	}
	if _, err := t.markAll(); err != nil {
		return measurement{}, err
	}
	r := float64(res.Count) / res.Seconds
	return measurement{Value: r, Rate: r}, nil
}

// memory samples the sender's and the receiver's resident memory over the
// suite's memory duration while the receiver takes values.
func (t *trial) memory(sender, receiver *proc) (measurement, error) {
	if err := t.awaitFirstValues(receiver); err != nil {
		return measurement{}, err
	}
	from, err := t.markAll()
	if err != nil {
		return measurement{}, err
	}
	const every = 250 * time.Millisecond
	var rss, recvRSS []float64
	for start := time.Now(); ; time.Sleep(every) {
		mb, err := residentMB(sender.cmd.Process.Pid)
		if err != nil {
			return measurement{}, sender.failure(err.Error())
		}
		rmb, err := residentMB(receiver.cmd.Process.Pid)
		if err != nil {
			return measurement{}, receiver.failure(err.Error())
		}
		rss, recvRSS = append(rss, mb), append(recvRSS, rmb)
		if time.Since(start) >= t.o.memDuration {
			break
		}
	}
	to, err := t.markAll()
	if err != nil {
		return measurement{}, err
	}
	return measurement{Value: rss[len(rss)-1], Rate: rate(from, to, receiver), RSS: rss, RecvRSS: recvRSS}, nil
}

// residentMB reads a process's resident set size from /proc, in MB.
func residentMB(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return float64(kb) / 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for process %d", pid)
}

// close tells every process to stop, the last started first, and kills
// those that have not ended within stopTimeout.
func (t *trial) close() {
	const stopTimeout = 10 * time.Second
	for i := len(t.procs) - 1; i >= 0; i-- {
		t.procs[i].stdin.Close()
	}
	deadline := time.Now().Add(stopTimeout)
	for _, p := range t.procs {
		select {
		case <-p.exited:
		case <-time.After(time.Until(deadline)):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	}
}

// tailWriter keeps the last max bytes written to it.
type tailWriter struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p...)
	if over := len(w.b) - w.max; over > 0 {
		w.b = append(w.b[:0], w.b[over:]...)
	}
	return len(p), nil
}

func (w *tailWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.b)
}
