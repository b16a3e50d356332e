package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/slardar-go/slardar/bench/internal/proc"
)

// syscallsPerConn attaches strace -c -f to a path's proxy (and its worker processes) for one run of the connection-rate
// row (8 clients, d) and returns its system calls per connection completed, by name, with the
// total under "total". Under strace every proxy slows; only the counts per connection compare.
func syscallsPerConn(p path, dir string, d time.Duration) (map[string]float64, error) {
	out := filepath.Join(dir, "strace-"+strings.ReplaceAll(p.name, " ", "-")+".txt")
	args := []string{"-c", "-f", "-o", out}
	for _, pid := range proc.Tree(p.cmd.Process.Pid) { // nginx's workers too
		args = append(args, "-p", strconv.Itoa(pid))
	}
	st := exec.Command("strace", args...)
	if err := st.Start(); err != nil {
		return nil, fmt.Errorf("strace: %w", err)
	}
	time.Sleep(time.Second) // attached to every thread
	rate, err := connRate(p.connrate, 8, d)
	st.Process.Signal(syscall.SIGINT)
	st.Wait()
	if err != nil {
		return nil, err
	}
	conns := rate * d.Seconds()
	f, err := os.Open(out)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	per := map[string]float64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// % time, seconds, usecs/call, calls, [errors,] syscall
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		if _, err := strconv.ParseFloat(fields[0], 64); err != nil {
			continue
		}
		calls, err := strconv.Atoi(fields[3])
		name := fields[len(fields)-1]
		if err != nil || name == "total" {
			continue
		}
		per[name] = float64(calls) / conns
		per["total"] += float64(calls) / conns
	}
	return per, nil
}

// printSyscalls prints, for every proxy, the system calls per connection of one
// connection-rate run under strace: the ones made at least once per 20 connections.
func printSyscalls(paths []path, dir string, d time.Duration) error {
	var rows []map[string]float64
	names := map[string]bool{}
	for _, p := range paths {
		per, err := syscallsPerConn(p, dir, d)
		if err != nil {
			return fmt.Errorf("system calls via %s: %w", p.name, err)
		}
		rows = append(rows, per)
		for n, v := range per {
			if v >= 0.05 && n != "total" {
				names[n] = true
			}
		}
	}
	var sorted []string
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	fmt.Printf("\n| system calls per connection (strace -c -f, 8 clients) | %s |\n", joinNames(paths))
	fmt.Printf("|---|%s\n", strings.Repeat("---|", len(paths)))
	for _, n := range append(sorted, "total") {
		cells := make([]string, len(rows))
		for i, r := range rows {
			cells[i] = strconv.FormatFloat(r[n], 'f', 2, 64)
		}
		fmt.Printf("| %s | %s |\n", n, strings.Join(cells, " | "))
	}
	return nil
}
