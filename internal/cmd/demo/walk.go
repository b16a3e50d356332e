package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/slardar-go/slardar/internal/testserver"
)

// The printed walkthrough and README's sh blocks are run, in --smoke, as a user would type
// them, in their order: a step that fails there fails the demo's test. Commands are the
// indented lines of the walkthrough (a heredoc's lines with them) and the lines of README's
// sh blocks; a command whose comment says it fails (ERROR, refused) must fail — it is retried
// for a while, as store-sync applies a store change a moment later.

// script turns commands as printed into a bash script: slardarctl is the one under test, a
// line said to fail must fail (retried up to 10 s), and everything else must succeed.
func script(lines []string, ctl string) string {
	var b strings.Builder
	b.WriteString("set -e\n")
	for _, l := range lines {
		l = strings.ReplaceAll(l, "bin/slardarctl", ctl)
		if cmd, comment, ok := strings.Cut(l, "  # "); ok && (strings.Contains(comment, "ERROR") || strings.Contains(comment, "refused")) {
			fmt.Fprintf(&b, "for i in $(seq 50); do if ! %s >/dev/null 2>&1; then break; fi; sleep 0.2; done\n! %s\n", cmd, cmd)
			continue
		}
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}

// runScript runs one part of a walkthrough and says which when it fails; env is added to the
// environment.
func runScript(what, body string, dir string, env ...string) error {
	cmd := exec.Command("bash", "-c", body)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s failed (%v):\n--- script\n%s--- output\n%s", what, err, body, out)
	}
	fmt.Printf("smoke: ran %s\n", what)
	return nil
}

// walkSteps are the commands of the printed walkthrough, by section: indented lines, dedented,
// under the title (the header line before them); sections whose title starts with one of skip
// are left out (they stop servers).
func walkSteps(text string, skip ...string) (sections [][]string, titles []string) {
	title := ""
	for _, l := range strings.Split(text, "\n") {
		switch {
		case l == "":
		case strings.HasPrefix(l, "  "):
			if slices.ContainsFunc(skip, func(s string) bool { return strings.HasPrefix(title, s) }) {
				continue
			}
			if len(titles) == 0 || titles[len(titles)-1] != title {
				titles = append(titles, title)
				sections = append(sections, nil)
			}
			sections[len(sections)-1] = append(sections[len(sections)-1], l[2:])
		default:
			title = l
		}
	}
	return sections, titles
}

// readmeBlocks is the sh blocks of a README, in order, without the make lines (the binaries
// are built), with the demo's default ports moved to the ones in ports.
func readmeBlocks(path string, ports map[int]int) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var lines []string
	in := false
	for _, l := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(l, "```sh"):
			in = true
		case strings.HasPrefix(l, "```"):
			in = false
		case in && !strings.HasPrefix(l, "make "):
			lines = append(lines, movePorts(l, ports))
		}
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("%s: no sh block", path)
	}
	// Paths are the repository's (examples/lua/...).
	root, _ := filepath.Abs(filepath.Dir(path))
	for i, l := range lines {
		lines[i] = strings.ReplaceAll(l, " examples/", " "+root+"/examples/")
	}
	return lines, nil
}

var (
	portRe  = regexp.MustCompile(`\d+`) // a run of digits: 3131, and the 3351 of script.content3351
	bodyLen = regexp.MustCompile(`^(.*printf '[A-Z]+ [a-z]+ \S+\\n\\x00\\x00\\x00\\x)([0-9a-f]{2})(.*)('.*)$`)
)

// movePorts replaces every default port of a line by its place in ports and, in a raw admin
// command (printf 'METHOD topic name\n\x00\x00\x00\xNN<body>'), the body's length with it.
func movePorts(l string, ports map[int]int) string {
	var moved strings.Builder
	last := 0
	for _, m := range portRe.FindAllStringIndex(l, -1) {
		n, _ := strconv.Atoi(l[m[0]:m[1]])
		p, ok := ports[n]
		if !ok || strings.HasPrefix(l[m[1]:], ".lua") { // a file's name keeps its number
			continue
		}
		moved.WriteString(l[last:m[0]])
		moved.WriteString(strconv.Itoa(p))
		last = m[1]
	}
	moved.WriteString(l[last:])
	l = moved.String()
	if m := bodyLen.FindStringSubmatch(l); m != nil {
		body := strings.ReplaceAll(m[3], `\n`, "\n")
		l = fmt.Sprintf("%s%02x%s%s", m[1], len(body), m[3], m[4])
	}
	return l
}

// smokeWalk runs the printed walkthrough, then README's sh blocks when readme is set.
func smokeWalk(o options, walk string, dbs [2]int) error {
	sections, titles := walkSteps(walk, "Kill a backend")
	for i, cmds := range sections {
		if err := runScript(fmt.Sprintf("step %q", strings.TrimSuffix(titles[i], ":")), script(cmds, o.ctlBin), "."); err != nil {
			return err
		}
	}
	if o.readme == "" {
		return nil
	}
	ports := map[int]int{1895: o.adminPort, 3131: o.dataPort, 3351: o.luaPort, 3306: dbs[0], 3307: dbs[1], 3141: o.mysqlPort, 1896: o.mysqlAdminPort}
	for _, p := range []int{3142, 1899} { // README's second mysql-proxy
		free, err := testserver.FreePort()
		if err != nil {
			return err
		}
		ports[p] = free
	}
	lines, err := readmeBlocks(o.readme, ports)
	if err != nil {
		return err
	}
	// slardarctl's default address is the demo's default admin port, moved with the others;
	// the binaries are the ones under test; what a block started in the background is stopped.
	body := "trap 'rc=$?; for p in $(jobs -p); do kill $p 2>/dev/null || true; done; wait || true; exit $rc' EXIT\n" +
		strings.ReplaceAll(script(lines, o.ctlBin), "bin/mysql-proxy", o.mysqlProxyBin)
	return runScript("README's sh blocks", body, ".", "SLARDAR_ADDR=127.0.0.1:"+strconv.Itoa(o.adminPort))
}
