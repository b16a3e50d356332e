-- The talk's first script: port 3351 answers by itself.  nc 127.0.0.1 3351  →  Hello, Lua!
ngx.say("Hello, Lua!")
