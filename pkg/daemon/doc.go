// Package daemon is what every slardar proxy daemon shares around its data path, and nothing
// a single binary owns: Core (the admin server with the upstream topic, the checkups registry
// and its heartbeats, the data listeners and the drain on shutdown), the flags every daemon
// has, the admin listener policy, the set of names a config file defined, and Serve, the signal
// loop. A daemon's start-up reads top to bottom in its command (pkg/cmd/<binary>):
//
//	flags → config loaded and validated once → engine (hooks) → Core → Serve until a signal → drain
package daemon
