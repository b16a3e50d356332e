// Command uringproxy is a design probe for l4bench (issue 22): a TCP proxy in Go over io_uring,
// without cgo or a binding — one ring per core (SO_REUSEPORT listeners), multishot accept,
// socket, connect, receive into buffers the kernel picks only when bytes arrive (an idle
// connection holds none), send, shutdown and close, all submitted in batches (no system call of
// their own: ~2 io_uring_enter per connection): one io_uring_enter submits
// everything the last completions asked for and waits for the next. Like epollproxy it has no
// hooks, retries, health or logs: it answers whether batched kernel crossings get the
// connection rate, small-message rate and idle memory of HAProxy on this machine.
//
//	uringproxy 127.0.0.1:8001=127.0.0.1:9001 [LISTEN=BACKEND ...]
package main

import (
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/slardar-go/slardar/bench/internal/probe"
)

// The kernel's ABI (include/uapi/linux/io_uring.h).
const (
	opAccept         = 13
	opConnect        = 16
	opClose          = 19
	opSend           = 26
	opRecv           = 27
	opProvideBuffers = 31
	opShutdown       = 34
	opSocket         = 45

	sqeBufferSelect = 1 << 5 // IOSQE_BUFFER_SELECT
	acceptMultishot = 1 << 0 // IORING_ACCEPT_MULTISHOT, in ioprio
	cqeFBuffer      = 1 << 0
	cqeFMore        = 1 << 1
	cqeBufferShift  = 16

	setupCQSize       = 1 << 3
	setupSingleIssuer = 1 << 12
	setupDeferTaskrun = 1 << 13
	enterGetEvents    = 1 << 0
	featSingleMmap    = 1 << 0

	offSQRing = 0
	offSQEs   = 0x10000000
)

type params struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sqOff                                                                  struct {
		head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
		userAddr                                                        uint64
	}
	cqOff struct {
		head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
		userAddr                                                        uint64
	}
}

type sqe struct {
	opcode, flags uint8
	ioprio        uint16
	fd            int32
	off           uint64
	addr          uint64
	len           uint32
	opFlags       uint32
	userData      uint64
	bufGroup      uint16
	personality   uint16
	spliceFDIn    int32
	addr3         uint64
	pad           uint64
}

type cqe struct {
	userData uint64
	res      int32
	flags    uint32
}

type ring struct {
	fd                      int
	sqHead, sqTail, cqHead  *uint32
	cqTail                  *uint32
	sqMask, cqMask, entries uint32
	sqes                    []sqe
	cqes                    []cqe
	tail, submitted         uint32
}

func newRing(entries uint32) (*ring, error) {
	p := params{flags: setupCQSize | setupSingleIssuer | setupDeferTaskrun, cqEntries: 4 * entries}
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", errno)
	}
	if p.features&featSingleMmap == 0 {
		return nil, fmt.Errorf("io_uring without IORING_FEAT_SINGLE_MMAP")
	}
	size := max(p.sqOff.array+p.sqEntries*4, p.cqOff.cqes+p.cqEntries*uint32(unsafe.Sizeof(cqe{})))
	mem, err := unix.Mmap(int(fd), offSQRing, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("mmap of the rings: %w", err)
	}
	sqesMem, err := unix.Mmap(int(fd), offSQEs, int(p.sqEntries)*int(unsafe.Sizeof(sqe{})), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("mmap of the entries: %w", err)
	}
	at := func(off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&mem[off])) }
	r := &ring{fd: int(fd), sqHead: at(p.sqOff.head), sqTail: at(p.sqOff.tail), cqHead: at(p.cqOff.head), cqTail: at(p.cqOff.tail),
		sqMask: *at(p.sqOff.ringMask), cqMask: *at(p.cqOff.ringMask), entries: p.sqEntries,
		sqes: unsafe.Slice((*sqe)(unsafe.Pointer(&sqesMem[0])), p.sqEntries),
		cqes: unsafe.Slice((*cqe)(unsafe.Pointer(&mem[p.cqOff.cqes])), p.cqEntries)}
	array := unsafe.Slice((*uint32)(unsafe.Pointer(&mem[p.sqOff.array])), p.sqEntries)
	for i := range array {
		array[i] = uint32(i)
	}
	return r, nil
}

// get is the next free submission entry, zeroed; a full queue is submitted first.
func (r *ring) get() *sqe {
	if r.tail-atomic.LoadUint32(r.sqHead) >= r.entries {
		r.enter(0)
	}
	s := &r.sqes[r.tail&r.sqMask]
	*s = sqe{}
	r.tail++
	return s
}

// enter submits what was queued and waits for at least wait completions.
func (r *ring) enter(wait uint32) {
	atomic.StoreUint32(r.sqTail, r.tail)
	n := r.tail - r.submitted
	r.submitted = r.tail
	for {
		_, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(n), uintptr(wait), enterGetEvents, 0, 0)
		if errno == unix.EINTR || errno == unix.EAGAIN || errno == unix.EBUSY {
			n = 0 // what was submitted stays submitted; wait again
			continue
		}
		if errno != 0 {
			fmt.Fprintln(os.Stderr, "uringproxy: io_uring_enter:", errno)
			os.Exit(1)
		}
		return
	}
}

// Operations, in the low byte of a completion's user data; the rest is the pair's index (or
// the listener's, for an accept).
const (
	kAccept = iota + 1
	kConnect
	kRecv // + direction
	_
	kSend // + direction
	_
	kShutdown
	kSocket
	kIgnore // close, provide buffers: nothing waits for them
)

const (
	bufSize = 16 << 10
	nBufs   = 1024 // per ring: 16 MiB, touched only as traffic needs
)

type mapping struct {
	listen  string
	backend unix.RawSockaddrInet4
}

// pair is a proxied connection. Direction d reads fd[d] and writes fd[1-d] (0: client to
// upstream).
type pair struct {
	fd       [2]int32
	pending  int      // operations in flight
	eof      [2]bool  // direction d read its end
	sending  [2]bool  // direction d has a send in flight
	buf      [2]int32 // the buffer direction d sends from
	off, n   [2]int32
	aborting bool
	free     bool
	m        *mapping
}

type loop struct {
	r         *ring
	maps      []*mapping
	listeners []int32
	pairs     []pair
	freeList  []uint32
	bufs      []byte
	starved   [][2]uint32 // (pair, direction) whose receive found no buffer
}

func main() {
	var maps []*mapping
	for _, pm := range probe.Args("uringproxy") {
		m := &mapping{listen: pm.Listen, backend: unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: pm.Backend.Addr().As4()}}
		port := pm.Backend.Port()
		m.backend.Port = port>>8 | port<<8 // network order
		maps = append(maps, m)
	}
	for range runtime.GOMAXPROCS(0) {
		lp, err := newLoop(maps)
		if err != nil {
			fmt.Fprintln(os.Stderr, "uringproxy:", err)
			os.Exit(1)
		}
		go lp.run()
	}
	select {}
}

func newLoop(maps []*mapping) (*loop, error) {
	lp := &loop{maps: maps, bufs: make([]byte, bufSize*nBufs)}
	for _, m := range maps {
		fd, err := probe.ListenReusePort(m.listen, 0)
		if err != nil {
			return nil, err
		}
		lp.listeners = append(lp.listeners, int32(fd))
	}
	return lp, nil
}

func (lp *loop) run() {
	// The ring is made on the thread that will submit to it (IORING_SETUP_SINGLE_ISSUER).
	runtime.LockOSThread()
	r, err := newRing(4096)
	if err != nil {
		fmt.Fprintln(os.Stderr, "uringproxy:", err)
		os.Exit(1)
	}
	lp.r = r
	lp.provide(0, nBufs)
	for i := range lp.listeners {
		lp.accept(uint32(i))
	}
	for {
		r.enter(1)
		head, tail := *r.cqHead, atomic.LoadUint32(r.cqTail)
		for ; head != tail; head++ {
			c := r.cqes[head&r.cqMask]
			lp.complete(c)
		}
		atomic.StoreUint32(r.cqHead, head)
	}
}

func (lp *loop) accept(l uint32) {
	s := lp.r.get()
	s.opcode, s.fd, s.ioprio, s.opFlags, s.userData = opAccept, lp.listeners[l], acceptMultishot, unix.SOCK_CLOEXEC, uint64(l)<<8|kAccept
}

// provide gives n buffers from bid on back to the kernel's group 0.
func (lp *loop) provide(bid, n int) {
	s := lp.r.get()
	s.opcode, s.fd, s.addr, s.len, s.off, s.userData = opProvideBuffers, int32(n), uint64(uintptr(unsafe.Pointer(&lp.bufs[bid*bufSize]))), bufSize, uint64(bid), kIgnore
}

func (lp *loop) newPair() uint32 {
	if n := len(lp.freeList); n > 0 {
		i := lp.freeList[n-1]
		lp.freeList = lp.freeList[:n-1]
		lp.pairs[i] = pair{}
		return i
	}
	lp.pairs = append(lp.pairs, pair{})
	return uint32(len(lp.pairs) - 1)
}

func (lp *loop) complete(c cqe) {
	op, idx := c.userData&0xff, uint32(c.userData>>8)
	switch {
	case op == kIgnore:
		return
	case op == kAccept:
		if c.flags&cqeFMore == 0 {
			lp.accept(idx)
		}
		if c.res >= 0 {
			lp.socket(c.res, idx)
		}
		return
	}
	p := &lp.pairs[idx]
	p.pending--
	switch {
	case op == kSocket:
		if c.res < 0 {
			p.fd[1] = -1
			lp.abort(idx)
			break
		}
		p.fd[1] = c.res
		lp.connect(idx)
	case op == kConnect:
		if c.res < 0 {
			lp.abort(idx)
			break
		}
		lp.recv(idx, 0)
		lp.recv(idx, 1)
	case op == kRecv || op == kRecv+1:
		d := int(op - kRecv)
		switch {
		case c.res == -int32(unix.ENOBUFS):
			lp.starved = append(lp.starved, [2]uint32{idx, uint32(d)})
		case c.res > 0 && !p.aborting:
			p.buf[d], p.off[d], p.n[d] = int32(c.flags>>cqeBufferShift), 0, c.res
			lp.send(idx, d)
		case c.res > 0: // aborting: drop what came
			lp.provide(int(c.flags>>cqeBufferShift), 1)
		case c.res == 0 && !p.aborting:
			p.eof[d] = true
			lp.shutdown(idx, p.fd[1-d], unix.SHUT_WR)
		default:
			if c.flags&cqeFBuffer != 0 {
				lp.provide(int(c.flags>>cqeBufferShift), 1)
			}
			lp.abort(idx)
		}
	case op == kSend || op == kSend+1:
		d := int(op - kSend)
		p.sending[d] = false
		if c.res < 0 {
			lp.provide(int(p.buf[d]), 1)
			lp.abort(idx)
			break
		}
		p.off[d] += c.res
		if p.off[d] < p.n[d] && !p.aborting {
			lp.send(idx, d)
			break
		}
		lp.provide(int(p.buf[d]), 1)
		if !p.aborting {
			lp.recv(idx, d)
		}
	case op == kShutdown:
	}
	lp.feedStarved()
	lp.maybeClose(idx)
}

// socket makes the upstream socket of a client accepted on listener l (IORING_OP_SOCKET: no
// system call of its own). The upstream socket goes without TCP_NODELAY: setting it is a
// system call (or a 6.7+ uring command).
func (lp *loop) socket(cfd int32, l uint32) {
	idx := lp.newPair()
	p := &lp.pairs[idx]
	p.fd, p.m = [2]int32{cfd, -1}, lp.maps[l]
	p.pending++
	s := lp.r.get()
	s.opcode, s.fd, s.off, s.userData = opSocket, unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, uint64(idx)<<8|kSocket
}

func (lp *loop) connect(idx uint32) {
	p := &lp.pairs[idx]
	p.pending++
	s := lp.r.get()
	s.opcode, s.fd, s.addr, s.off, s.userData = opConnect, p.fd[1], uint64(uintptr(unsafe.Pointer(&p.m.backend))), uint64(unix.SizeofSockaddrInet4), uint64(idx)<<8|kConnect
}

func (lp *loop) recv(idx uint32, d int) {
	p := &lp.pairs[idx]
	p.pending++
	s := lp.r.get()
	s.opcode, s.fd, s.flags, s.bufGroup, s.len, s.userData = opRecv, p.fd[d], sqeBufferSelect, 0, bufSize, uint64(idx)<<8|uint64(kRecv+d)
}

func (lp *loop) send(idx uint32, d int) {
	p := &lp.pairs[idx]
	p.pending++
	p.sending[d] = true
	s := lp.r.get()
	at := int(p.buf[d])*bufSize + int(p.off[d])
	s.opcode, s.fd, s.addr, s.len, s.opFlags, s.userData = opSend, p.fd[1-d], uint64(uintptr(unsafe.Pointer(&lp.bufs[at]))), uint32(p.n[d]-p.off[d]), unix.MSG_NOSIGNAL, uint64(idx)<<8|uint64(kSend+d)
}

func (lp *loop) shutdown(idx uint32, fd int32, how int) {
	lp.pairs[idx].pending++
	s := lp.r.get()
	s.opcode, s.fd, s.len, s.userData = opShutdown, fd, uint32(how), uint64(idx)<<8|kShutdown
}

// abort ends a pair on an error: both sockets shut down, so that what is still in flight on
// them completes, and then closed.
func (lp *loop) abort(idx uint32) {
	p := &lp.pairs[idx]
	if p.aborting {
		return
	}
	p.aborting = true
	for _, fd := range p.fd {
		if fd >= 0 {
			lp.shutdown(idx, fd, unix.SHUT_RDWR)
		}
	}
}

// maybeClose closes a pair with nothing in flight that is over: both directions read their
// end, or it was aborted.
func (lp *loop) maybeClose(idx uint32) {
	p := &lp.pairs[idx]
	if p.free || p.pending > 0 || !(p.aborting || p.eof[0] && p.eof[1]) {
		return
	}
	for _, fd := range p.fd {
		if fd >= 0 {
			s := lp.r.get()
			s.opcode, s.fd, s.userData = opClose, fd, kIgnore
		}
	}
	p.free = true
	lp.freeList = append(lp.freeList, idx)
}

// feedStarved posts again the receives that found no buffer, now that some were given back.
func (lp *loop) feedStarved() {
	if len(lp.starved) == 0 {
		return
	}
	todo := lp.starved
	lp.starved = nil
	for _, w := range todo {
		p := &lp.pairs[w[0]]
		if p.aborting {
			continue
		}
		lp.recv(w[0], int(w[1]))
	}
	lp.maybeCloseAll(todo)
}

func (lp *loop) maybeCloseAll(ws [][2]uint32) {
	for _, w := range ws {
		lp.maybeClose(w[0])
	}
}
