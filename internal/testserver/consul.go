package testserver

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// ConsulVersion is the Consul scripts/install-deps.sh builds and caches.
const ConsulVersion = "1.20.6"

// ConsulBinary finds the cached Consul build (or consul on PATH).
func ConsulBinary() (string, error) {
	cache, err := os.UserCacheDir()
	if err == nil {
		p := filepath.Join(cache, "slardar", "consul-"+ConsulVersion, "consul")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("consul"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("consul %s not found: run scripts/install-deps.sh", ConsulVersion)
}

// Process is a server started by this package.
type Process struct {
	Addr string // host:port clients use
	cmd  *exec.Cmd
	done chan struct{}
	args []string
	log  string
}

// StartConsul runs a single-node dev-mode Consul agent (in-memory) on free loopback ports.
func StartConsul(ctx context.Context, dir string) (*Process, error) {
	bin, err := ConsulBinary()
	if err != nil {
		return nil, err
	}
	ports := make([]int, 4)
	for i := range ports {
		if ports[i], err = FreePort(); err != nil {
			return nil, err
		}
	}
	p := &Process{Addr: "127.0.0.1:" + strconv.Itoa(ports[0]), log: filepath.Join(dir, "consul.log"),
		args: []string{bin, "agent", "-dev", "-bind", "127.0.0.1", "-client", "127.0.0.1", "-node", "slardar-test",
			"-http-port", strconv.Itoa(ports[0]), "-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1",
			"-serf-lan-port", strconv.Itoa(ports[1]), "-serf-wan-port", strconv.Itoa(ports[2]), "-server-port", strconv.Itoa(ports[3])}}
	if err := p.Start(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// StartEtcd runs a single-member etcd with its data in dir on free loopback ports.
func StartEtcd(ctx context.Context, dir string) (*Process, error) {
	client, err := FreePort()
	if err != nil {
		return nil, err
	}
	peer, err := FreePort()
	if err != nil {
		return nil, err
	}
	cu, pu := "http://127.0.0.1:"+strconv.Itoa(client), "http://127.0.0.1:"+strconv.Itoa(peer)
	p := &Process{Addr: "127.0.0.1:" + strconv.Itoa(client), log: filepath.Join(dir, "etcd.log"),
		args: []string{"etcd", "--name", "slardar-test", "--data-dir", filepath.Join(dir, "etcd-data"),
			"--listen-client-urls", cu, "--advertise-client-urls", cu, "--listen-peer-urls", pu,
			"--initial-advertise-peer-urls", pu, "--initial-cluster", "slardar-test=" + pu}}
	if err := p.Start(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// Start (re)starts the process and waits until it answers on its client port.
func (p *Process) Start(ctx context.Context) error {
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.args[0], p.args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %w", filepath.Base(p.args[0]), err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(p.done) }()
	deadline := time.Now().Add(60 * time.Second)
	url := "http://" + p.Addr + "/v1/status/leader" // consul
	if filepath.Base(p.args[0]) == "etcd" {
		url = "http://" + p.Addr + "/health"
	}
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited (log: %s)", filepath.Base(p.args[0]), p.log)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	p.Stop()
	return fmt.Errorf("%s did not come up (log: %s)", filepath.Base(p.args[0]), p.log)
}

// Stop terminates the process (SIGKILL after 10 s).
func (p *Process) Stop() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
	p.cmd = nil
}
