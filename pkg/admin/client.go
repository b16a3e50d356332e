package admin

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"time"
)

// DefaultMaxReply bounds the data of a reply a Client accepts.
const DefaultMaxReply = 64 << 20

// Client is one admin connection. Requests on it are answered in order; it is not safe for
// concurrent use.
type Client struct {
	addr string
	conn net.Conn
	r    *bufio.Reader
}

// Dial connects to an admin server and, when token is not empty, authenticates.
func Dial(ctx context.Context, addr, token string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connecting to admin %s: %w", addr, err)
	}
	c := &Client{addr: addr, conn: conn, r: bufio.NewReader(conn)}
	if token != "" {
		if _, err := c.Do(ctx, "AUTH", "token", token, nil); err != nil {
			conn.Close()
			return nil, err
		}
	}
	return c, nil
}

// Addr is the server address the client is connected to.
func (c *Client) Addr() string { return c.addr }

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Do sends one request and reads its reply. An ERROR reply is returned as the reply and as a
// *ReplyError; transport failures are returned as other errors.
func (c *Client) Do(ctx context.Context, method, topic, name string, body []byte) (Reply, error) {
	if dl, ok := ctx.Deadline(); ok {
		c.conn.SetDeadline(dl)
	} else {
		c.conn.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := c.conn.Write(AppendRequest(nil, method, topic, name, body)); err != nil {
		return Reply{}, fmt.Errorf("sending %s %s %s to %s: %w", method, topic, name, c.addr, err)
	}
	reply, err := ReadReply(c.r, DefaultMaxReply)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return Reply{}, fmt.Errorf("reading reply to %s %s %s from %s: %w", method, topic, name, c.addr, err)
	}
	return reply, reply.Err()
}

// Do is one request on a connection of its own: dial addr, authenticate with token (when not
// empty), send the request and read its reply (see Client.Do).
func Do(ctx context.Context, addr, token, method, topic, name string, body []byte) (Reply, error) {
	c, err := Dial(ctx, addr, token)
	if err != nil {
		return Reply{}, err
	}
	defer c.Close()
	return c.Do(ctx, method, topic, name, body)
}
