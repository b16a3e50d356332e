package daemon

import (
	"context"
	"errors"

	"github.com/slardar-go/slardar/pkg/config"
	"github.com/slardar-go/slardar/pkg/metrics"
)

// StartHTTP serves the daemon's metrics and health (metrics.Serve) on h.Listen: nil or ""
// leaves it off. /readyz answers 200 once the first configuration is applied and until the
// daemon drains.
func (c *Core) StartHTTP(h config.HTTP) error {
	if h.Listen == nil || *h.Listen == "" {
		return nil
	}
	e, err := metrics.Serve(*h.Listen, c.Prom, c.Ready, h.Pprof, nil)
	if err != nil {
		return err
	}
	c.http = e
	c.Log.Info("http listening", "addr", e.Addr(), "pprof", h.Pprof)
	return nil
}

// StartEndpoints serves the HTTP endpoint (common.HTTP) and the admin protocol (common.Admin,
// or defaultAdmin); on error neither is left open.
func (c *Core) StartEndpoints(ctx context.Context, common *config.Common, defaultAdmin string) error {
	if err := c.StartHTTP(common.HTTP); err != nil {
		return err
	}
	if err := c.StartAdmin(ctx, common.Admin, defaultAdmin); err != nil {
		c.http.Close()
		c.http = nil
		return err
	}
	return nil
}

// Ready is nil once the first configuration is applied, until shutdown begins.
func (c *Core) Ready() error {
	if !c.ready.Load() {
		return errors.New("starting or draining")
	}
	return nil
}

// HTTPAddr is the bound address of the HTTP endpoint, or "" when it is off.
func (c *Core) HTTPAddr() string {
	if c.http == nil {
		return ""
	}
	return c.http.Addr()
}
