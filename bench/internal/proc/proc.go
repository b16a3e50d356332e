// Package proc starts and stops the processes a benchmark compares (proxies, backends), waits
// for their ports, and reads what they did (sysbench's rate, a process's CPU time).
package proc

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/slardar-go/slardar/internal/testserver"
)

// Port returns a free loopback port.
func Port() int {
	p, err := testserver.FreePort()
	if err != nil {
		panic(err)
	}
	return p
}

// Start starts cmd, killed if the benchmark dies.
func Start(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd.Start()
}

// StartLogged starts cmd with its output in logPath.
func StartLogged(cmd *exec.Cmd, logPath string) error {
	f, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = f, f
	return Start(cmd)
}

// Stop sends SIGTERM and kills after 5 s.
func Stop(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
	}
}

// WaitPort waits up to 5 s for a loopback port to accept.
func WaitPort(p int) error {
	for range 100 {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("port %d did not open", p)
}

// Best measures every path rounds times and keeps each path's best value. The order of the
// paths alternates between rounds so drift on a shared machine does not favour one of them;
// each value is reported on stderr as it comes.
func Best(row, unit string, names []string, rounds int, measure func(i int) (float64, error)) ([]float64, error) {
	best := make([]float64, len(names))
	for round := 0; round < rounds; round++ {
		for k := range names {
			i := k
			if round%2 == 1 {
				i = len(names) - 1 - k
			}
			v, err := measure(i)
			if err != nil {
				return nil, fmt.Errorf("%s via %s: %w", row, names[i], err)
			}
			best[i] = max(best[i], v)
			fmt.Fprintf(os.Stderr, "%s via %s: %.2f %s\n", row, names[i], v, unit)
		}
	}
	return best, nil
}

// Rate runs clients that repeat attempt until d has passed and returns successful attempts per
// second; more than 1% failed attempts is an error naming what (e.g. "connections").
func Rate(clients int, d time.Duration, what string, attempt func() error) (float64, error) {
	var ok, failed atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if attempt() != nil {
					failed.Add(1)
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > ok.Load()/100 {
		return 0, fmt.Errorf("%d of %d %s failed", f, f+ok.Load(), what)
	}
	return float64(ok.Load()) / d.Seconds(), nil
}

// SysbenchCmd is a sysbench command (test, then cmd: prepare or run) against the test servers'
// database through hosts and ports (comma-separated lists spread the threads), one table of
// 10 000 rows, with extra options before cmd.
func SysbenchCmd(test, hosts, ports string, threads, secs int, cmd string, extra ...string) *exec.Cmd {
	args := []string{test, "--db-driver=mysql", "--mysql-host=" + hosts, "--mysql-port=" + ports,
		"--mysql-user=" + testserver.User, "--mysql-password=" + testserver.Password, "--mysql-db=" + testserver.Database,
		"--tables=1", "--table-size=10000", "--threads=" + strconv.Itoa(threads)}
	args = append(args, extra...)
	return exec.Command("sysbench", append(args, "--time="+strconv.Itoa(secs), "--report-interval=0", cmd)...)
}

var sysbenchRE = regexp.MustCompile(`queries:\s+(\d+)\s+\(([\d.]+) per sec`)

// Sysbench runs a sysbench command and returns its queries per second and total queries.
func Sysbench(cmd *exec.Cmd) (qps float64, queries int64, err error) {
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, 0, fmt.Errorf("sysbench: %v\n%s", err, out)
	}
	return ParseSysbench(out)
}

// ParseSysbench reads queries per second and total queries from sysbench's output.
func ParseSysbench(out []byte) (qps float64, queries int64, err error) {
	m := sysbenchRE.FindSubmatch(out)
	if m == nil {
		return 0, 0, fmt.Errorf("no qps in sysbench output:\n%s", out)
	}
	queries, _ = strconv.ParseInt(string(m[1]), 10, 64)
	qps, err = strconv.ParseFloat(string(m[2]), 64)
	return qps, queries, err
}

// CPU is the user + system time process pid has used so far (from /proc/<pid>/stat).
func CPU(pid int) (time.Duration, error) {
	// utime is field 14 and stime 15, in clock ticks (USER_HZ, 100 on Linux).
	fields, err := stat(pid)
	if err != nil {
		return 0, err
	}
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, fields)
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// stat is /proc/<pid>/stat's fields after the command name (which may hold spaces, in
// parentheses): the first is the state (field 3), the second the parent's pid.
func stat(pid int) ([]string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	s := string(data)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:]), nil
}

// Num formats a measurement: whole numbers from 100 up, two decimals below.
func Num(v float64) string {
	if v >= 100 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// Tree is process pid and all its descendants (nginx's workers).
func Tree(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if fields, err := stat(p); err == nil && len(fields) > 1 {
			ppid, _ := strconv.Atoi(fields[1])
			children[ppid] = append(children[ppid], p)
		}
	}
	tree := []int{pid}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, children[tree[i]]...)
	}
	return tree
}

// RSS is the resident memory of process pid and all its descendants, from /proc/<pid>/status.
func RSS(pid int) (int64, error) {
	var total int64
	for _, p := range Tree(pid) {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		if err != nil {
			if p == pid {
				return 0, err
			}
			continue
		}
		for line := range strings.SplitSeq(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				total += kb << 10
			}
		}
	}
	return total, nil
}
