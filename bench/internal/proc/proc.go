// Package proc starts and stops the processes a benchmark compares (proxies, backends) and
// waits for their ports.
package proc

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
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
