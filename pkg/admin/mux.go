package admin

import (
	"context"
	"maps"
	"slices"
	"strings"
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

// Spec is one command of the protocol: METHOD topic, and whether a body follows the line.
type Spec struct {
	Method, Topic string
	Body          bool
}

// Known is the command table of the protocol as the slardar daemons speak it: the original's
// (upstream, code) and this project's extensions (route, server; user and session on
// mysql-proxy). A daemon serves a subset; a client
// reads it to know whether a command needs a body before it sends one.
var Known = []Spec{
	{"PUT", "upstream", true}, {"POST", "upstream", true}, {"GET", "upstream", false}, {"DELETE", "upstream", false},
	{"POST", "code", true}, {"PUT", "code", false}, {"LOAD", "code", true}, {"DELETE", "code", false}, {"GET", "code", false},
	{"PUT", "route", true}, {"GET", "route", false}, {"DELETE", "route", false},
	{"PUT", "server", true}, {"GET", "server", false},
	{"PUT", "user", true}, {"GET", "user", false}, {"DELETE", "user", false},
	{"GET", "session", false}, {"DELETE", "session", false}, {"GET", "mysql", false}, {"DELETE", "mysql", false},
	{"PUT", "rule", true}, {"GET", "rule", false}, {"DELETE", "rule", false},
	{"AUTH", "token", false},
}

// CarriesBody looks a command up in Known (method and topic in any case, as servers read them);
// known is false for a command no slardar daemon serves.
func CarriesBody(method, topic string) (body, known bool) {
	method, topic = strings.ToUpper(method), strings.ToLower(topic)
	for _, s := range Known {
		if s.Method == method && s.Topic == topic {
			return s.Body, true
		}
	}
	return false, false
}

// Specs lists the commands registered on m, by topic and method.
func (m *Mux) Specs() []Spec {
	var out []Spec
	for _, topic := range slices.Sorted(maps.Keys(m.topics)) {
		for _, method := range slices.Sorted(maps.Keys(m.topics[topic])) {
			out = append(out, Spec{Method: method, Topic: topic, Body: m.topics[topic][method].body})
		}
	}
	return out
}
