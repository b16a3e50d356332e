package l4

import (
	"encoding/binary"
	"fmt"
	"net"
	"strconv"
)

// proxyV2Signature starts every PROXY protocol v2 header.
var proxyV2Signature = []byte("\r\n\r\n\x00\r\nQUIT\n")

// ProxyHeader is the PROXY protocol header (version 1 text or version 2 binary) announcing a
// TCP connection from src to dst, written first to the backend.
func ProxyHeader(version int, src, dst net.Addr) ([]byte, error) {
	s, ok1 := src.(*net.TCPAddr)
	d, ok2 := dst.(*net.TCPAddr)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("PROXY protocol needs TCP addresses, got %T and %T", src, dst)
	}
	sip, dip := s.IP.To4(), d.IP.To4()
	v4 := sip != nil && dip != nil
	if !v4 {
		sip, dip = s.IP.To16(), d.IP.To16()
	}
	switch version {
	case 1:
		proto := "TCP6"
		if v4 {
			proto = "TCP4"
		}
		return fmt.Appendf(nil, "PROXY %s %s %s %d %d\r\n", proto, net.IP(sip), net.IP(dip), s.Port, d.Port), nil
	case 2:
		h := append([]byte(nil), proxyV2Signature...)
		h = append(h, 0x21) // version 2, PROXY command
		if v4 {
			h = append(h, 0x11) // TCP over IPv4
			h = binary.BigEndian.AppendUint16(h, 12)
		} else {
			h = append(h, 0x21) // TCP over IPv6
			h = binary.BigEndian.AppendUint16(h, 36)
		}
		h = append(h, sip...)
		h = append(h, dip...)
		h = binary.BigEndian.AppendUint16(h, uint16(s.Port))
		h = binary.BigEndian.AppendUint16(h, uint16(d.Port))
		return h, nil
	}
	return nil, fmt.Errorf("PROXY protocol version %s: want 1 or 2", strconv.Itoa(version))
}
