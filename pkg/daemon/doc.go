// Package daemon is what every slardar proxy daemon is made of, and nothing a single binary
// owns: Core (the admin server with the upstream topic, the checkups registry and its
// heartbeats, the data listeners and the drain on shutdown), Daemon (a Core and the Parts a
// configuration sets, applied together all or nothing), Scripts (the Lua part), the admin
// listener policy and the set of names a config file defined. Its life — config loaded once,
// signals, reloads — is pkg/lifecycle's. A daemon's start-up reads top to bottom in its command
// (pkg/cmd/<binary>):
//
//	flags → lifecycle.Run → New(Spec: hooks, common settings) → Add(parts) → Start → served until a signal → Shutdown
package daemon
