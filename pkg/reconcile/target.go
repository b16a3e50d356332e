package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/slardar-go/slardar/pkg/admin"
	"github.com/slardar-go/slardar/pkg/mysql/rules"
	"github.com/slardar-go/slardar/pkg/script"
)

// ReadActual reads a proxy's upstreams, installed code and routes. A topic the proxy does not
// serve (no code on sni-router, no routes on slardar-proxy) is left nil.
func ReadActual(ctx context.Context, c *admin.Client) (Actual, error) {
	var a Actual
	r, err := c.Do(ctx, "GET", "upstream", "status", nil)
	if err != nil {
		return a, err
	}
	if a.Instance, err = Instance(r.Data); err != nil {
		return a, err
	}
	r, err = c.Do(ctx, "GET", "upstream", "info", nil)
	if err != nil {
		return a, err
	}
	if a.Upstreams, err = normalizeAll(r.Data, "upstream info", normalizeEcho); err != nil {
		return a, err
	}
	if r, err = c.Do(ctx, "GET", "code", "info", nil); err == nil {
		var info script.Info
		if err := json.Unmarshal(r.Data, &info); err != nil {
			return a, fmt.Errorf("decoding code info: %w", err)
		}
		a.Code = make(map[string]string, len(info.Modules))
		for _, m := range info.Modules {
			a.Code[m.Name] = m.Version
		}
	} else if !topicMissing(err) {
		return a, err
	}
	if r, err = c.Do(ctx, "GET", "user", "info", nil); err == nil {
		if a.Users, err = adminUsers(r.Data); err != nil {
			return a, err
		}
	} else if !topicMissing(err) {
		return a, err
	}
	if r, err = c.Do(ctx, "GET", "rule", "info", nil); err == nil {
		if a.Rules, err = adminRules(r.Data); err != nil {
			return a, err
		}
	} else if !topicMissing(err) {
		return a, err
	}
	if r, err = c.Do(ctx, "GET", "route", "info", nil); err == nil {
		if a.Routes, err = normalizeAll(r.Data, "route info", NormalizeRoute); err != nil {
			return a, err
		}
	} else if !topicMissing(err) {
		return a, err
	}
	return a, nil
}

// Instance reads which life of a proxy a GET upstream status reply is from: its instance_id,
// or its start_time for proxies that have none.
func Instance(status []byte) (string, error) {
	var st struct {
		Instance string `json:"instance_id"`
		Start    string `json:"start_time"`
	}
	if err := json.Unmarshal(status, &st); err != nil {
		return "", fmt.Errorf("decoding upstream status: %w", err)
	}
	return st.Instance + st.Start, nil
}

// normalizeAll decodes a proxy's {"name": value} reply and normalizes each value, so it compares
// with the store's. A value that does not normalize is kept as it is: it differs from any
// desired value, so it will be put.
func normalizeAll(data []byte, what string, normalize func([]byte) ([]byte, error)) (map[string][]byte, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", what, err)
	}
	out := make(map[string][]byte, len(raw))
	for name, v := range raw {
		if b, err := normalize(v); err == nil {
			out[name] = b
		} else {
			out[name] = v
		}
	}
	return out, nil
}

func topicMissing(err error) bool {
	var re *admin.ReplyError
	return errors.As(err, &re) && re.Msg == admin.ErrTopicInvalid
}

// Apply sends the changes. A change the proxy refuses is reported and the others still go; a
// transport error stops (the connection is gone).
func Apply(ctx context.Context, c *admin.Client, d Desired, changes []Change) (applied int, err error) {
	var refused []error
	for _, ch := range changes {
		var body []byte
		method := "PUT"
		switch {
		case ch.Action == "delete":
			method = "DELETE"
		case ch.Kind == KindUpstream:
			body = d.Upstreams[ch.Name]
		case ch.Kind == KindRoute:
			body = d.Routes[ch.Name]
		case ch.Kind == KindUser:
			body = d.Users[ch.Name]
		case ch.Kind == KindRule:
			body = d.Rules[ch.Name]
		case ch.Kind == KindCode:
			method, body = "LOAD", d.Code[ch.Name]
		}
		_, err := c.Do(ctx, method, ch.Kind, ch.Name, body)
		var re *admin.ReplyError
		if method == "LOAD" && errors.As(err, &re) && re.Msg == script.ErrAlreadyStaged {
			// This version is already staged (a POST without PUT): install it.
			_, err = c.Do(ctx, "PUT", KindCode, ch.Name, nil)
		}
		switch {
		case err == nil:
			applied++
		case errors.As(err, &re):
			refused = append(refused, fmt.Errorf("%s: %s", ch, re.Msg))
		default:
			return applied, err
		}
	}
	return applied, errors.Join(refused...)
}

// adminUsers are the users of a GET user info reply that were PUT over the admin protocol
// (those of the config file are not the store's to change), in the form store values compare
// in: compact, sorted fields, without "source".
func adminUsers(data []byte) (map[string][]byte, error) {
	var raw map[string]map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("decoding user info: %w", err)
	}
	out := map[string][]byte{}
	for name, u := range raw {
		if u["source"] != "admin" {
			continue
		}
		delete(u, "source")
		b, err := json.Marshal(u)
		if err != nil {
			return nil, err
		}
		out[name] = b
	}
	return out, nil
}

// adminRules are the rules of a GET rule info reply that were PUT over the admin protocol, as
// NormalizeRule writes them.
func adminRules(data []byte) (map[string][]byte, error) {
	var infos []rules.Info
	if err := json.Unmarshal(data, &infos); err != nil {
		return nil, fmt.Errorf("decoding rule info: %w", err)
	}
	out := map[string][]byte{}
	for _, in := range infos {
		if in.Source != "admin" {
			continue
		}
		b, err := json.Marshal(in.Rule)
		if err != nil {
			return nil, err
		}
		out[in.Name] = b
	}
	return out, nil
}
