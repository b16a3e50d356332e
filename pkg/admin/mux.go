package admin

import (
	"context"
)

// HandlerFunc answers one command. body is nil for methods that carry none.
type HandlerFunc func(ctx context.Context, name string, body []byte) Reply

type route struct {
	body    bool
	handler HandlerFunc
}

// Mux routes commands to handlers by topic and method. The zero value has no topics; every
// daemon registers the topics it serves (upstream, code, route, ...).
type Mux struct {
	topics map[string]map[string]route
}

// Handle registers h for METHOD topic; body says whether the method carries a body (decided
// per topic and method, as in the original's command table).
func (m *Mux) Handle(method, topic string, body bool, h HandlerFunc) {
	if m.topics == nil {
		m.topics = make(map[string]map[string]route)
	}
	if m.topics[topic] == nil {
		m.topics[topic] = make(map[string]route)
	}
	m.topics[topic][method] = route{body: body, handler: h}
}

// lookup resolves a command in the original's order: topic first, then method. It returns the
// error string to reply with when the command is not routable.
func (m *Mux) lookup(cmd Command) (route, string) {
	methods, ok := m.topics[cmd.Topic]
	if !ok {
		return route{}, ErrTopicInvalid
	}
	r, ok := methods[cmd.Method]
	if !ok {
		return route{}, ErrMethodInvalid
	}
	return r, ""
}
