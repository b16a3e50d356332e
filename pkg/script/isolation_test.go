package script

import (
	"context"
	"errors"
	"testing"
)

// One port's script cannot change what another port's script sees (issue 15: a content script
// doing ngx.exit = function() end made a port whose preread is ngx.exit(1) let connections
// through, even after the bad script was deleted). Each attack runs many times, so that it
// reaches many pooled states; after each, the victim must still reject every connection.
func TestScriptsCannotChangeEachOther(t *testing.T) {
	attacks := []struct{ name, src string }{
		{"assign ngx.exit", `ngx.exit = function() end`},
		{"rawset ngx", `rawset(ngx, "exit", function() end)`},
		{"metatable of ngx", `getmetatable(ngx).__index = {exit = function() end}`},
		{"string metatable", `getmetatable("").__index.rep = function() return "" end`},
		{"assign a library function", `string.format = function() return "" end`},
		{"new library key", `table.exit = 1`},
		{"table.insert into a library", `table.insert(ngx, function() end)`},
		{"getfenv(0)", `getfenv(0).ngx = {exit = function() end}`},
		{"getfenv of a builtin", `getfenv(print).ngx = {exit = function() end}`},
		{"package.loaded", `package.loaded["resty.limit.req"] = {new = function() end}`},
		{"a built-in module", `require("cjson").encode = function() end`},
		{"setfenv", `setfenv(0, {})`},
		{"_G", `_G.ngx = {exit = function() end}`},
		{"loadstring", `loadstring("ngx = {exit = function() end}")()`},
		{"coroutine", `coroutine.wrap(function() getfenv(0).ngx = nil end)()`},
		{"ngx.var raw", `rawset(ngx.var, "remote_addr", "10.0.0.1")`},
		{"ngx.req", `ngx.req.socket = function() end`},
	}
	for _, at := range attacks {
		t.Run(at.name, func(t *testing.T) {
			rt := newRuntime(t)
			load(t, rt, "script.content7001", at.src)
			load(t, rt, "script.preread7000", `if ngx.var.remote_addr ~= "127.0.0.1" then return end
				if string.format("%d", 1) ~= "1" or require("cjson").encode({}) ~= "{}" then return end
				ngx.exit(1)`)
			for range 50 {
				cx, _ := conn(t)
				cx.Port = "7001"
				rt.Content(context.Background(), cx) // fails or not: only what follows matters
				victim, _ := conn(t)
				var rej *RejectedError
				if err := rt.Preread(context.Background(), victim); !errors.As(err, &rej) || rej.Code != 1 {
					t.Fatalf("after %q the victim's preread returned %v; want ngx.exit(1)", at.src, err)
				}
			}
		})
	}
}

// A chunk's globals stay its own; reads of the shared ones work; pairs over its _G lists its own.
func TestChunkGlobals(t *testing.T) {
	rt := newRuntime(t)
	if out, err := content(t, rt, `x = 1; _G.y = 2; local f = loadstring("z = 3; return x"); ngx.say(x, y, f(), z == nil)`, ""); err != nil || out != "12niltrue\n" {
		t.Fatalf("globals: %q %v", out, err)
	}
}

// A state that required a module drops it when the module is replaced: the next require runs
// the new version (package.loaded is a read-only view; the drop must reach the table itself).
func TestRequiredModuleReplaced(t *testing.T) {
	rt := newRuntime(t)
	load(t, rt, "script.content7000", `ngx.say(require("greeting").text)`)
	for _, v := range []string{"one", "two", "three"} {
		load(t, rt, "greeting", `return {text = "`+v+`"}`)
		for range 3 {
			out, err := serve(t, rt, "")
			if err != nil || out != v+"\n" {
				t.Fatalf("after loading %q: %q %v", v, out, err)
			}
		}
	}
}
